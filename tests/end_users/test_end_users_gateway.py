"""Every end users' route through the REST gateway: the operator's with its
key, the user's with a session token; refusals with their HTTP statuses."""

from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from billing_service.config import Settings

from ..gateway_fixtures import gateway_fixture, gateway_url, http_fixture, ok
from .end_user_helpers import PASSWORD

__all__ = ["gateway_fixture", "http_fixture"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"secrets_key": SecretStr(Fernet.generate_key().decode())})


async def test_every_end_user_route_is_served(http: httpx.AsyncClient, gateway: Any) -> None:
    created = ok(
        await http.post("/v1/end-users", json={"email": "ada@example.com", "password": PASSWORD})
    )
    assert created["user"]["email"] == "ada@example.com"
    signed = ok(
        await http.post(
            "/v1/end-users:signIn",
            json={"email": "ada@example.com", "password": PASSWORD, "user_agent": "curl"},
        )
    )
    assert "password" not in str(signed) and signed["session_token"].startswith("bus_")
    hook = ok(await http.put("/v1/usage-alerts/webhook", json={"url": "https://example.com/h"}))
    assert hook["signing_secret"].startswith("whsec_")
    assert ok(await http.get("/v1/usage-alerts", params={"limit": 5})) == {"alerts": []}

    headers = {"Authorization": f"Bearer {signed['session_token']}"}
    async with httpx.AsyncClient(base_url=gateway_url(gateway), headers=headers) as me:
        prefs = ok(await me.get("/v1/me/preferences"))["preferences"]
        assert prefs["notifications"] == {"in_app": True, "push": True, "email": True}
        assert prefs["privacy"]["profile_visibility"] == "public"
        assert prefs["appearance"]["theme"] == "system"
        ok(await me.patch("/v1/me/preferences/notifications", json={"email": False}))
        ok(await me.patch("/v1/me/preferences/privacy", json={"profile_visibility": "private"}))
        updated = ok(
            await me.patch("/v1/me/preferences/appearance", json={"timezone": "Europe/Paris"})
        )["preferences"]
        assert updated["notifications"]["email"] is False
        assert updated["privacy"]["profile_visibility"] == "private"
        assert updated["appearance"]["timezone"] == "Europe/Paris"
        bad_zone = await me.patch("/v1/me/preferences/appearance", json={"timezone": "Nowhere"})
        assert bad_zone.status_code == 400
        assert bad_zone.json()["error"]["code"] == "invalid_argument"

        sessions = ok(await me.get("/v1/me/sessions"))["sessions"]
        assert [s["is_current"] for s in sessions] == [True]
        assert ok(await me.post("/v1/me/sessions:revokeAll", json={})) == {"revoked": 0}
        wrong = await me.post(
            "/v1/me/password:change",
            json={"current_password": "nope", "new_password": "another long one 7"},
        )
        assert wrong.status_code == 403
        assert wrong.json()["error"]["code"] == "wrong_password"
        ok(
            await me.post(
                "/v1/me/password:change",
                json={"current_password": PASSWORD, "new_password": "another long one 7"},
            )
        )
        asked = ok(
            await me.post(
                "/v1/me/email:requestChange",
                json={"new_email": "b@example.com", "password": "another long one 7"},
            )
        )
        assert asked["expires_at"]
        unknown = await me.post("/v1/me/email:verifyChange", json={"token": "bec_nope"})
        assert unknown.status_code == 400
        deletion = ok(
            await me.post(
                "/v1/me/deletion",
                json={"password": "another long one 7", "confirm_text": "DELETE MY ACCOUNT"},
            )
        )
        assert ok(await me.get("/v1/me/deletion")) == {
            "requested": True,
            "grace_period_ends": deletion["scheduled_at"],
        }
        assert ok(await me.delete("/v1/me/deletion")) == {"cancelled": True}
        history = ok(await me.get("/v1/me/login-history", params={"limit": 1}))["entries"]
        assert history[0]["success"] is True and history[0]["user_agent"] == "curl"

        ok(
            await me.post(
                "/v1/me/push-tokens", json={"token": "ExponentPushToken[x]", "platform": "expo"}
            )
        )
        ok(await me.post("/v1/me/push-tokens:unregister", json={"token": "ExponentPushToken[x]"}))
        assert ok(await me.get("/v1/me/notifications")) == {"notifications": []}
        missing = await me.post("/v1/me/notifications/ntf_1:markRead", json={})
        assert missing.status_code == 404

        # The operator's key is refused here, the session token there.
        assert (await http.get("/v1/me/preferences")).status_code == 401
        assert (await me.get("/v1/usage-alerts")).status_code == 401
        ok(await me.delete(f"/v1/me/sessions/{sessions[0]['id']}"))
        gone = await me.get("/v1/me/preferences")
        assert gone.status_code == 401
        assert gone.json()["error"]["code"] == "unauthenticated"


async def test_a_throttled_sign_in_is_429_with_retry_after(http: httpx.AsyncClient) -> None:
    ok(await http.post("/v1/end-users", json={"email": "ada@example.com", "password": PASSWORD}))
    for _ in range(5):
        wrong = await http.post(
            "/v1/end-users:signIn", json={"email": "ada@example.com", "password": "x"}
        )
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "invalid_credentials"
    throttled = await http.post(
        "/v1/end-users:signIn", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "sign_in_throttled"
    assert int(throttled.headers["retry-after"]) > 0


class TestSignInsByClientAddress:
    """The gateway forwards its client's address; a chain the client made up
    is not believed. Here only 127.0.0.1 (the gateway's own calls) is a
    trusted proxy, and the HTTP clients call from 127.0.0.2 and 127.0.0.3."""

    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(
            update={"sign_in_address_max_failures": 3, "trusted_proxies": "127.0.0.1"}
        )

    async def test_failures_from_one_client_close_it_whatever_it_forwards(
        self, http: httpx.AsyncClient, gateway: Any
    ) -> None:
        ok(
            await http.post(
                "/v1/end-users", json={"email": "ada@example.com", "password": PASSWORD}
            )
        )

        async def sign_in_from(address: str, password: str, claimed: str) -> httpx.Response:
            transport = httpx.AsyncHTTPTransport(local_address=address)
            async with httpx.AsyncClient(
                base_url=gateway_url(gateway), headers=http.headers, transport=transport
            ) as client:
                return await client.post(
                    "/v1/end-users:signIn",
                    json={"email": "ada@example.com", "password": password},
                    headers={"X-Forwarded-For": claimed},
                )

        for n in range(3):
            wrong = await sign_in_from("127.0.0.2", f"wrong {n}", f"198.51.100.{n}")
            assert wrong.status_code == 401
        throttled = await sign_in_from("127.0.0.2", PASSWORD, "198.51.100.99")
        assert throttled.status_code == 429
        assert throttled.json()["error"]["code"] == "sign_in_throttled"
        assert int(throttled.headers["retry-after"]) > 0
        ok(await sign_in_from("127.0.0.3", PASSWORD, "127.0.0.2"))
