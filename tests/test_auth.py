"""Login, sessions, CSRF and roles on the real app, over both real stores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import Depends
from fastapi.testclient import TestClient

from dashboards.api import create_app
from dashboards.auth import User, authenticate, make_account, require_roles
from pipeline.errors import ConfigError
from pipeline.store.embedded import EmbeddedStore
from pipeline.store.interface import Store

PASSWORD = "correct horse battery"


@pytest.fixture
def users(store: Store) -> Store:
    for name, roles in (
        ("ann", ["agent"]),
        ("mia", ["marketing"]),
        ("oli", ["operator"]),
        ("root", ["admin"]),
    ):
        store.save_user(make_account(name, PASSWORD, roles))
    return store


def login(client: TestClient, name: str, password: str = PASSWORD) -> str:
    response = client.post("/api/v1/login", json={"name": name, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["csrf_token"]
    return token


def test_users_are_stored_with_a_hash_not_the_password(store: Store) -> None:
    store.save_user(make_account("ann", PASSWORD, ["agent", "marketing"]))
    account = store.get_user("ann")
    assert account is not None and account.roles == ["agent", "marketing"]
    assert PASSWORD not in account.password_hash and account.password_hash.startswith("$argon2")
    assert authenticate(store, "ann", PASSWORD) == account
    assert authenticate(store, "ann", PASSWORD + "!") is None
    assert authenticate(store, "nobody", PASSWORD) is None
    store.save_user(make_account("ann", "another password", ["operator"]))
    assert [u.roles for u in store.list_users()] == [["operator"]]
    assert authenticate(store, "ann", PASSWORD) is None
    assert store.get_user("nobody") is None


@pytest.mark.parametrize(
    ("name", "password", "roles", "problem"),
    [
        ("ann", "short", ["agent"], "at least 8"),
        ("ann", PASSWORD, ["boss"], "unknown role 'boss'"),
        ("ann", PASSWORD, [], "at least one role"),
        ("a n", PASSWORD, ["agent"], "letters, digits"),
    ],
)
def test_bad_accounts_are_refused_with_a_reason(
    name: str, password: str, roles: list[str], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        make_account(name, password, roles)


def test_login_session_and_logout(users: Store) -> None:
    client = TestClient(create_app(users))
    assert client.get("/api/v1/status").status_code == 401
    assert client.get("/api/v1/health").status_code == 200
    wrong = client.post("/api/v1/login", json={"name": "ann", "password": "nope"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "wrong name or password"
    token = login(client, "ann")
    assert client.get("/api/v1/me").json() == {"name": "ann", "roles": ["agent"]}
    assert client.get("/api/v1/queue").status_code == 200
    assert client.post("/api/v1/logout").status_code == 403  # no CSRF token
    assert client.post("/api/v1/logout", headers={"X-CSRF-Token": token}).status_code == 200
    assert client.get("/api/v1/me").status_code == 401


def test_a_forged_or_foreign_cookie_is_anonymous(users: Store) -> None:
    client = TestClient(create_app(users))
    login(client, "ann")
    cookie = client.cookies["triage_session"]
    other = TestClient(create_app(users))  # another process: another random session key
    other.cookies.set("triage_session", cookie)
    assert other.get("/api/v1/me").status_code == 401
    tampered = TestClient(create_app(users))
    tampered.cookies.set("triage_session", cookie[:-4] + "AAAA")
    assert tampered.get("/api/v1/me").status_code == 401


def test_roles_are_enforced_and_admin_passes(users: Store) -> None:
    app = create_app(users)

    @app.get("/api/v1/marketing-only")
    def marketing_only(user: User = Depends(require_roles("marketing"))) -> User:  # noqa: B008
        return user

    for name, status in (("ann", 403), ("oli", 403), ("mia", 200), ("root", 200)):
        client = TestClient(app)
        login(client, name)
        response = client.get("/api/v1/marketing-only")
        assert response.status_code == status, name
        if status == 403:
            assert "needs the role marketing" in response.json()["detail"]
    mia = TestClient(app)
    login(mia, "mia")
    assert mia.get("/api/v1/queue").status_code == 403


def test_a_removed_role_takes_effect_at_once(users: Store) -> None:
    client = TestClient(create_app(users))
    login(client, "ann")
    assert client.get("/api/v1/queue").status_code == 200
    users.save_user(make_account("ann", PASSWORD, ["marketing"]))
    assert client.get("/api/v1/queue").status_code == 403


def test_form_login_without_csrf_is_refused(users: Store) -> None:
    client = TestClient(create_app(users))
    response = client.post("/api/v1/login", data={"name": "ann", "password": PASSWORD})
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]


def test_triage_users_add_reads_the_password_from_stdin(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}}
    env["TRIAGE_DATA_DIR"] = str(tmp_path)

    def triage(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pipeline", *args],
            input=stdin, env=env, capture_output=True, text=True, timeout=120,
        )

    added = triage("users", "add", "ann", "--role", "agent", "--role", "admin",
                   "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0 and "added ann (admin, agent)" in added.stdout
    bad = triage("users", "add", "bob", "--role", "boss", "--password-stdin", stdin=PASSWORD)
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "triage: unknown role 'boss': choose from agent, marketing, operator, supervisor, admin"
    )
    short = triage("users", "add", "bob", "--role", "agent", "--password-stdin", stdin="abc\n")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    store = EmbeddedStore(tmp_path / "triage.sqlite3")
    account = store.get_user("ann")
    store.close()
    assert account is not None and account.roles == ["admin", "agent"]
    listed = triage("users", "list")
    assert "ann" in listed.stdout and "bob" not in listed.stdout


def test_repeated_failed_sign_ins_are_throttled_and_a_good_one_is_not_counted(
    users: Store,
) -> None:
    client = TestClient(create_app(users))
    for _ in range(3):  # successful sign-ins never count against the limit
        login(client, "ann")
    for _ in range(10):
        wrong = client.post("/api/v1/login", json={"name": "ann", "password": "guess-guess"})
        assert wrong.status_code == 401
    blocked = client.post("/api/v1/login", json={"name": "ann", "password": PASSWORD})
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["Retry-After"]) <= 60
    assert "too many failed sign-ins" in blocked.json()["detail"]
    other = TestClient(create_app(users))  # another deployment keeps its own count
    login(other, "ann")
