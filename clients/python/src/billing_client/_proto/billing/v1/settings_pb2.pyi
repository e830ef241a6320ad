import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProfileVisibility(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROFILE_VISIBILITY_UNSPECIFIED: _ClassVar[ProfileVisibility]
    PROFILE_VISIBILITY_PUBLIC: _ClassVar[ProfileVisibility]
    PROFILE_VISIBILITY_NETWORK: _ClassVar[ProfileVisibility]
    PROFILE_VISIBILITY_PRIVATE: _ClassVar[ProfileVisibility]

class Theme(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    THEME_UNSPECIFIED: _ClassVar[Theme]
    THEME_LIGHT: _ClassVar[Theme]
    THEME_DARK: _ClassVar[Theme]
    THEME_SYSTEM: _ClassVar[Theme]
PROFILE_VISIBILITY_UNSPECIFIED: ProfileVisibility
PROFILE_VISIBILITY_PUBLIC: ProfileVisibility
PROFILE_VISIBILITY_NETWORK: ProfileVisibility
PROFILE_VISIBILITY_PRIVATE: ProfileVisibility
THEME_UNSPECIFIED: Theme
THEME_LIGHT: Theme
THEME_DARK: Theme
THEME_SYSTEM: Theme

class NotificationPreferences(_message.Message):
    __slots__ = ("in_app", "push", "email")
    IN_APP_FIELD_NUMBER: _ClassVar[int]
    PUSH_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    in_app: bool
    push: bool
    email: bool
    def __init__(self, in_app: _Optional[bool] = ..., push: _Optional[bool] = ..., email: _Optional[bool] = ...) -> None: ...

class PrivacyPreferences(_message.Message):
    __slots__ = ("profile_visibility", "show_email", "show_location")
    PROFILE_VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    SHOW_EMAIL_FIELD_NUMBER: _ClassVar[int]
    SHOW_LOCATION_FIELD_NUMBER: _ClassVar[int]
    profile_visibility: ProfileVisibility
    show_email: bool
    show_location: bool
    def __init__(self, profile_visibility: _Optional[_Union[ProfileVisibility, str]] = ..., show_email: _Optional[bool] = ..., show_location: _Optional[bool] = ...) -> None: ...

class AppearancePreferences(_message.Message):
    __slots__ = ("theme", "timezone", "locale")
    THEME_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    LOCALE_FIELD_NUMBER: _ClassVar[int]
    theme: Theme
    timezone: str
    locale: str
    def __init__(self, theme: _Optional[_Union[Theme, str]] = ..., timezone: _Optional[str] = ..., locale: _Optional[str] = ...) -> None: ...

class Preferences(_message.Message):
    __slots__ = ("notifications", "privacy", "appearance")
    NOTIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_FIELD_NUMBER: _ClassVar[int]
    APPEARANCE_FIELD_NUMBER: _ClassVar[int]
    notifications: NotificationPreferences
    privacy: PrivacyPreferences
    appearance: AppearancePreferences
    def __init__(self, notifications: _Optional[_Union[NotificationPreferences, _Mapping]] = ..., privacy: _Optional[_Union[PrivacyPreferences, _Mapping]] = ..., appearance: _Optional[_Union[AppearancePreferences, _Mapping]] = ...) -> None: ...

class GetPreferencesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetPreferencesResponse(_message.Message):
    __slots__ = ("preferences",)
    PREFERENCES_FIELD_NUMBER: _ClassVar[int]
    preferences: Preferences
    def __init__(self, preferences: _Optional[_Union[Preferences, _Mapping]] = ...) -> None: ...

class UpdateNotificationsRequest(_message.Message):
    __slots__ = ("in_app", "push", "email")
    IN_APP_FIELD_NUMBER: _ClassVar[int]
    PUSH_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    in_app: bool
    push: bool
    email: bool
    def __init__(self, in_app: _Optional[bool] = ..., push: _Optional[bool] = ..., email: _Optional[bool] = ...) -> None: ...

class UpdateNotificationsResponse(_message.Message):
    __slots__ = ("preferences",)
    PREFERENCES_FIELD_NUMBER: _ClassVar[int]
    preferences: Preferences
    def __init__(self, preferences: _Optional[_Union[Preferences, _Mapping]] = ...) -> None: ...

class UpdatePrivacyRequest(_message.Message):
    __slots__ = ("profile_visibility", "show_email", "show_location")
    PROFILE_VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    SHOW_EMAIL_FIELD_NUMBER: _ClassVar[int]
    SHOW_LOCATION_FIELD_NUMBER: _ClassVar[int]
    profile_visibility: ProfileVisibility
    show_email: bool
    show_location: bool
    def __init__(self, profile_visibility: _Optional[_Union[ProfileVisibility, str]] = ..., show_email: _Optional[bool] = ..., show_location: _Optional[bool] = ...) -> None: ...

class UpdatePrivacyResponse(_message.Message):
    __slots__ = ("preferences",)
    PREFERENCES_FIELD_NUMBER: _ClassVar[int]
    preferences: Preferences
    def __init__(self, preferences: _Optional[_Union[Preferences, _Mapping]] = ...) -> None: ...

class UpdateAppearanceRequest(_message.Message):
    __slots__ = ("theme", "timezone", "locale")
    THEME_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    LOCALE_FIELD_NUMBER: _ClassVar[int]
    theme: Theme
    timezone: str
    locale: str
    def __init__(self, theme: _Optional[_Union[Theme, str]] = ..., timezone: _Optional[str] = ..., locale: _Optional[str] = ...) -> None: ...

class UpdateAppearanceResponse(_message.Message):
    __slots__ = ("preferences",)
    PREFERENCES_FIELD_NUMBER: _ClassVar[int]
    preferences: Preferences
    def __init__(self, preferences: _Optional[_Union[Preferences, _Mapping]] = ...) -> None: ...

class UserSession(_message.Message):
    __slots__ = ("id", "user_agent", "ip_address", "is_current", "created_at", "expires_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IS_CURRENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    user_agent: str
    ip_address: str
    is_current: bool
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., user_agent: _Optional[str] = ..., ip_address: _Optional[str] = ..., is_current: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[UserSession]
    def __init__(self, sessions: _Optional[_Iterable[_Union[UserSession, _Mapping]]] = ...) -> None: ...

class RevokeSessionRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RevokeSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RevokeAllSessionsRequest(_message.Message):
    __slots__ = ("include_current",)
    INCLUDE_CURRENT_FIELD_NUMBER: _ClassVar[int]
    include_current: bool
    def __init__(self, include_current: _Optional[bool] = ...) -> None: ...

class RevokeAllSessionsResponse(_message.Message):
    __slots__ = ("revoked",)
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    revoked: int
    def __init__(self, revoked: _Optional[int] = ...) -> None: ...

class ChangePasswordRequest(_message.Message):
    __slots__ = ("current_password", "new_password")
    CURRENT_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    NEW_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    current_password: str
    new_password: str
    def __init__(self, current_password: _Optional[str] = ..., new_password: _Optional[str] = ...) -> None: ...

class ChangePasswordResponse(_message.Message):
    __slots__ = ("revoked_sessions",)
    REVOKED_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    revoked_sessions: int
    def __init__(self, revoked_sessions: _Optional[int] = ...) -> None: ...

class RequestEmailChangeRequest(_message.Message):
    __slots__ = ("new_email", "password")
    NEW_EMAIL_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    new_email: str
    password: str
    def __init__(self, new_email: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class RequestEmailChangeResponse(_message.Message):
    __slots__ = ("message", "expires_at")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    message: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, message: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class VerifyEmailChangeRequest(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    def __init__(self, token: _Optional[str] = ...) -> None: ...

class VerifyEmailChangeResponse(_message.Message):
    __slots__ = ("email",)
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    email: str
    def __init__(self, email: _Optional[str] = ...) -> None: ...

class RequestDeletionRequest(_message.Message):
    __slots__ = ("password", "confirm_text", "reason")
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CONFIRM_TEXT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    password: str
    confirm_text: str
    reason: str
    def __init__(self, password: _Optional[str] = ..., confirm_text: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RequestDeletionResponse(_message.Message):
    __slots__ = ("scheduled_at",)
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    scheduled_at: _timestamp_pb2.Timestamp
    def __init__(self, scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CancelDeletionRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CancelDeletionResponse(_message.Message):
    __slots__ = ("cancelled",)
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    cancelled: bool
    def __init__(self, cancelled: _Optional[bool] = ...) -> None: ...

class GetDeletionStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetDeletionStatusResponse(_message.Message):
    __slots__ = ("requested", "grace_period_ends")
    REQUESTED_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_ENDS_FIELD_NUMBER: _ClassVar[int]
    requested: bool
    grace_period_ends: _timestamp_pb2.Timestamp
    def __init__(self, requested: _Optional[bool] = ..., grace_period_ends: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LoginAttempt(_message.Message):
    __slots__ = ("created_at", "ip_address", "user_agent", "success")
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    created_at: _timestamp_pb2.Timestamp
    ip_address: str
    user_agent: str
    success: bool
    def __init__(self, created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ip_address: _Optional[str] = ..., user_agent: _Optional[str] = ..., success: _Optional[bool] = ...) -> None: ...

class GetLoginHistoryRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class GetLoginHistoryResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[LoginAttempt]
    def __init__(self, entries: _Optional[_Iterable[_Union[LoginAttempt, _Mapping]]] = ...) -> None: ...
