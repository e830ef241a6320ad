"""Servicers of the end users' services (proto <-> domain only): UserService
and UsageAlertService for the operator, SettingsService and
NotificationService for a signed-in end user."""

from collections.abc import Sequence
from typing import Any, TypeAlias

import grpc
from billing.v1 import (
    notification_pb2,
    notification_pb2_grpc,
    settings_pb2,
    settings_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)

from ..domain.errors import NotFound
from ..domain.networks import IPNetwork
from ..domain.owners import Owner, OwnerKind
from ..domain.quantities import display
from ..end_users.accounts import EndUsers, preference_changes
from ..end_users.model import (
    EndUser,
    LoginAttempt,
    Notification,
    Preferences,
    ProfileVisibility,
    PushPlatform,
    Session,
    Theme,
    UsageAlert,
)
from ..end_users.notifications import NOTIFICATION_PREFIX, Notifications, alert_id
from ..forwarding import client_address
from . import convert as c
from .guard import current_operator, current_session

Context: TypeAlias = grpc.aio.ServicerContext

EMAIL_CHANGE_MAILED = "A confirmation code was sent to the new address."
EMAIL_CHANGE_QUEUED = (
    "A confirmation code is queued for the new address: it is sent once this service"
    " has a mail server."
)
VISIBILITY_TO_PROTO = {
    ProfileVisibility.PUBLIC: settings_pb2.PROFILE_VISIBILITY_PUBLIC,
    ProfileVisibility.NETWORK: settings_pb2.PROFILE_VISIBILITY_NETWORK,
    ProfileVisibility.PRIVATE: settings_pb2.PROFILE_VISIBILITY_PRIVATE,
}
VISIBILITY_FROM_PROTO = {v: k for k, v in VISIBILITY_TO_PROTO.items()}
THEME_TO_PROTO = {
    Theme.LIGHT: settings_pb2.THEME_LIGHT,
    Theme.DARK: settings_pb2.THEME_DARK,
    Theme.SYSTEM: settings_pb2.THEME_SYSTEM,
}
THEME_FROM_PROTO = {v: k for k, v in THEME_TO_PROTO.items()}
PLATFORM_FROM_PROTO = {
    notification_pb2.PUSH_PLATFORM_EXPO: PushPlatform.EXPO,
    notification_pb2.PUSH_PLATFORM_FCM: PushPlatform.FCM,
    notification_pb2.PUSH_PLATFORM_APNS: PushPlatform.APNS,
}


class UserServicer(user_pb2_grpc.UserServiceServicer):
    def __init__(self, end_users: EndUsers, trusted_proxies: Sequence[IPNetwork]) -> None:
        self._end_users = end_users
        self._trusted_proxies = trusted_proxies

    async def CreateUser(
        self, request: user_pb2.CreateUserRequest, context: Context
    ) -> user_pb2.CreateUserResponse:
        user = await self._end_users.create(
            current_operator(), request.email, request.password, request.user_id
        )
        return user_pb2.CreateUserResponse(user=_user(user))

    async def SignIn(
        self, request: user_pb2.SignInRequest, context: Context
    ) -> user_pb2.SignInResponse:
        token, session, user = await self._end_users.sign_in(
            current_operator(),
            request.email,
            request.password,
            request.ip_address,
            request.user_agent,
            client_address(
                context.peer(), context.invocation_metadata() or (), self._trusted_proxies
            ),
        )
        return user_pb2.SignInResponse(
            session_token=token,
            session_id=session.id,
            expires_at=c.timestamp(session.expires_at),
            user=_user(user),
        )


class SettingsServicer(settings_pb2_grpc.SettingsServiceServicer):
    def __init__(self, end_users: EndUsers) -> None:
        self._end_users = end_users

    async def GetPreferences(
        self, request: settings_pb2.GetPreferencesRequest, context: Context
    ) -> settings_pb2.GetPreferencesResponse:
        user = await self._end_users.me(current_session())
        return settings_pb2.GetPreferencesResponse(preferences=_preferences(user.preferences))

    async def UpdateNotifications(
        self, request: settings_pb2.UpdateNotificationsRequest, context: Context
    ) -> settings_pb2.UpdateNotificationsResponse:
        changes = preference_changes(
            in_app=_given(request, "in_app"),
            push=_given(request, "push"),
            email=_given(request, "email"),
        )
        user = await self._end_users.update_preferences(current_session(), changes)
        return settings_pb2.UpdateNotificationsResponse(preferences=_preferences(user.preferences))

    async def UpdatePrivacy(
        self, request: settings_pb2.UpdatePrivacyRequest, context: Context
    ) -> settings_pb2.UpdatePrivacyResponse:
        changes = preference_changes(
            profile_visibility=c.optional_enum(
                "profile_visibility", request.profile_visibility, VISIBILITY_FROM_PROTO
            ),
            show_email=_given(request, "show_email"),
            show_location=_given(request, "show_location"),
        )
        user = await self._end_users.update_preferences(current_session(), changes)
        return settings_pb2.UpdatePrivacyResponse(preferences=_preferences(user.preferences))

    async def UpdateAppearance(
        self, request: settings_pb2.UpdateAppearanceRequest, context: Context
    ) -> settings_pb2.UpdateAppearanceResponse:
        changes = preference_changes(
            theme=c.optional_enum("theme", request.theme, THEME_FROM_PROTO),
            timezone=_given(request, "timezone"),
            locale=_given(request, "locale"),
        )
        user = await self._end_users.update_preferences(current_session(), changes)
        return settings_pb2.UpdateAppearanceResponse(preferences=_preferences(user.preferences))

    async def ListSessions(
        self, request: settings_pb2.ListSessionsRequest, context: Context
    ) -> settings_pb2.ListSessionsResponse:
        current = current_session()
        sessions = await self._end_users.sessions(current)
        return settings_pb2.ListSessionsResponse(
            sessions=[_session(session, current) for session in sessions]
        )

    async def RevokeSession(
        self, request: settings_pb2.RevokeSessionRequest, context: Context
    ) -> settings_pb2.RevokeSessionResponse:
        if not await self._end_users.revoke(current_session(), request.id):
            raise NotFound("session", request.id[:64])
        return settings_pb2.RevokeSessionResponse()

    async def RevokeAllSessions(
        self, request: settings_pb2.RevokeAllSessionsRequest, context: Context
    ) -> settings_pb2.RevokeAllSessionsResponse:
        revoked = await self._end_users.revoke_all(current_session(), request.include_current)
        return settings_pb2.RevokeAllSessionsResponse(revoked=revoked)

    async def ChangePassword(
        self, request: settings_pb2.ChangePasswordRequest, context: Context
    ) -> settings_pb2.ChangePasswordResponse:
        revoked = await self._end_users.change_password(
            current_session(), request.current_password, request.new_password
        )
        return settings_pb2.ChangePasswordResponse(revoked_sessions=revoked)

    async def RequestEmailChange(
        self, request: settings_pb2.RequestEmailChangeRequest, context: Context
    ) -> settings_pb2.RequestEmailChangeResponse:
        expires_at, mailed = await self._end_users.request_email_change(
            current_session(), request.new_email, request.password
        )
        return settings_pb2.RequestEmailChangeResponse(
            message=EMAIL_CHANGE_MAILED if mailed else EMAIL_CHANGE_QUEUED,
            expires_at=c.timestamp(expires_at),
        )

    async def VerifyEmailChange(
        self, request: settings_pb2.VerifyEmailChangeRequest, context: Context
    ) -> settings_pb2.VerifyEmailChangeResponse:
        email = await self._end_users.verify_email_change(current_session(), request.token)
        return settings_pb2.VerifyEmailChangeResponse(email=email)

    async def RequestDeletion(
        self, request: settings_pb2.RequestDeletionRequest, context: Context
    ) -> settings_pb2.RequestDeletionResponse:
        at = await self._end_users.request_deletion(
            current_session(), request.password, request.confirm_text, request.reason
        )
        return settings_pb2.RequestDeletionResponse(scheduled_at=c.timestamp(at))

    async def CancelDeletion(
        self, request: settings_pb2.CancelDeletionRequest, context: Context
    ) -> settings_pb2.CancelDeletionResponse:
        cancelled = await self._end_users.cancel_deletion(current_session())
        return settings_pb2.CancelDeletionResponse(cancelled=cancelled)

    async def GetDeletionStatus(
        self, request: settings_pb2.GetDeletionStatusRequest, context: Context
    ) -> settings_pb2.GetDeletionStatusResponse:
        user = await self._end_users.me(current_session())
        response = settings_pb2.GetDeletionStatusResponse(
            requested=user.deletion_scheduled_at is not None
        )
        if user.deletion_scheduled_at is not None:
            response.grace_period_ends.CopyFrom(c.timestamp(user.deletion_scheduled_at))
        return response

    async def GetLoginHistory(
        self, request: settings_pb2.GetLoginHistoryRequest, context: Context
    ) -> settings_pb2.GetLoginHistoryResponse:
        entries = await self._end_users.login_history(current_session(), request.limit)
        return settings_pb2.GetLoginHistoryResponse(entries=[_attempt(e) for e in entries])


class NotificationServicer(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(self, notifications: Notifications) -> None:
        self._notifications = notifications

    async def RegisterToken(
        self, request: notification_pb2.RegisterTokenRequest, context: Context
    ) -> notification_pb2.RegisterTokenResponse:
        platform = c.optional_enum("platform", request.platform, PLATFORM_FROM_PROTO)
        await self._notifications.register_token(
            current_session(), request.token, platform, request.device_id
        )
        return notification_pb2.RegisterTokenResponse()

    async def UnregisterToken(
        self, request: notification_pb2.UnregisterTokenRequest, context: Context
    ) -> notification_pb2.UnregisterTokenResponse:
        await self._notifications.unregister_token(current_session(), request.token)
        return notification_pb2.UnregisterTokenResponse()

    async def ListNotifications(
        self, request: notification_pb2.ListNotificationsRequest, context: Context
    ) -> notification_pb2.ListNotificationsResponse:
        found = await self._notifications.inbox(
            current_session(), request.limit, request.unread_only
        )
        return notification_pb2.ListNotificationsResponse(
            notifications=[_notification(n) for n in found]
        )

    async def MarkNotificationRead(
        self, request: notification_pb2.MarkNotificationReadRequest, context: Context
    ) -> notification_pb2.MarkNotificationReadResponse:
        found = await self._notifications.mark_read(current_session(), request.id)
        return notification_pb2.MarkNotificationReadResponse(notification=_notification(found))


class UsageAlertServicer(notification_pb2_grpc.UsageAlertServiceServicer):
    def __init__(self, notifications: Notifications) -> None:
        self._notifications = notifications

    async def SetAlertWebhook(
        self, request: notification_pb2.SetAlertWebhookRequest, context: Context
    ) -> notification_pb2.SetAlertWebhookResponse:
        secret = await self._notifications.set_webhook(current_operator(), request.url)
        return notification_pb2.SetAlertWebhookResponse(signing_secret=secret)

    async def ListUsageAlerts(
        self, request: notification_pb2.ListUsageAlertsRequest, context: Context
    ) -> notification_pb2.ListUsageAlertsResponse:
        alerts = await self._notifications.alerts(current_operator(), request.limit)
        return notification_pb2.ListUsageAlertsResponse(alerts=[_alert(a) for a in alerts])


def _given(request: Any, name: str) -> Any:
    """An optional field's value, None when it was not given."""
    return getattr(request, name) if request.HasField(name) else None


def _user(user: EndUser) -> user_pb2.EndUser:
    return user_pb2.EndUser(id=user.id, email=user.email, created_at=c.timestamp(user.created_at))


def _preferences(prefs: Preferences) -> settings_pb2.Preferences:
    return settings_pb2.Preferences(
        notifications=settings_pb2.NotificationPreferences(
            in_app=prefs.in_app, push=prefs.push, email=prefs.email
        ),
        privacy=settings_pb2.PrivacyPreferences(
            profile_visibility=VISIBILITY_TO_PROTO[prefs.profile_visibility],
            show_email=prefs.show_email,
            show_location=prefs.show_location,
        ),
        # An unset zone or locale stays unset (JSON null), never "".
        appearance=settings_pb2.AppearancePreferences(
            theme=THEME_TO_PROTO[prefs.theme],
            timezone=prefs.timezone or None,
            locale=prefs.locale or None,
        ),
    )


def _session(session: Session, current: Session) -> settings_pb2.UserSession:
    return settings_pb2.UserSession(
        id=session.id,
        user_agent=session.user_agent,
        ip_address=session.ip_address,
        is_current=session.id == current.id,
        created_at=c.timestamp(session.created_at),
        expires_at=c.timestamp(session.expires_at),
    )


def _attempt(attempt: LoginAttempt) -> settings_pb2.LoginAttempt:
    return settings_pb2.LoginAttempt(
        created_at=c.timestamp(attempt.created_at),
        ip_address=attempt.ip_address,
        user_agent=attempt.user_agent,
        success=attempt.success,
    )


def _alert(alert: UsageAlert) -> notification_pb2.UsageAlert:
    message = notification_pb2.UsageAlert(
        id=alert_id(alert),
        primitive=alert.primitive,
        threshold_percent=alert.threshold,
        used=display(alert.used),
        limit=display(alert.limit),
        used_decimal=c.decimal(alert.used),
        limit_decimal=c.decimal(alert.limit),
        period_start=c.timestamp(alert.period_start),
        period_end=c.timestamp(alert.period_end),
        created_at=c.timestamp(alert.created_at),
    )
    owner = Owner.from_key(alert.owner_key)
    if owner.kind is OwnerKind.USER:
        message.user_id = owner.id
    else:
        message.organization_id = owner.id
    return message


def _notification(notification: Notification) -> notification_pb2.Notification:
    message = notification_pb2.Notification(
        id=f"{NOTIFICATION_PREFIX}{notification.id}",
        title=notification.title,
        body=notification.body,
        created_at=c.timestamp(notification.created_at),
        alert=_alert(notification.alert),
    )
    if notification.read_at is not None:
        message.read_at.CopyFrom(c.timestamp(notification.read_at))
    return message
