"""What the soak's clients do: normal users, abusers, and chats the fake upstream is told to fail.

Every action states the statuses it expects; the checks compare them with what came back.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass, field

import jwt

from ..fake_model import FAULT_500, FAULT_HANG
from .traffic import Chat, Gateway

PASSWORD = "soak password, long enough"
MODEL = "llama3.1"
LEAVE_EARLY = 0.2  # streams the client leaves after two tokens
MAX_CONTENT_LENGTH = 1 << 20  # the gateway's default


@dataclass
class User:
    email: str
    address: str
    headers: dict = field(default_factory=dict)
    api_key: str = ""
    conversations: list[str] = field(default_factory=list)


class Addresses:
    """A fresh client address each time, from a private range (only ever sent as X-Forwarded-For)."""

    def __init__(self):
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"10.{self.count // 65536 % 256}.{self.count // 256 % 256}.{self.count % 256}"


class Soak:
    def __init__(self, gateway: Gateway, *, fault_500: float, fault_hang: float, seed: int | None = None):
        self.gw = gateway
        self.fault_500, self.fault_hang = fault_500, fault_hang
        self.random = random.Random(seed)
        self.address = Addresses()
        self.users: list[User] = []
        self.victim: User | None = None
        self.flood_address = self.address()
        self.chats: dict[str, int] = {}
        self.bad_bodies = 0

    # --- set-up and the account actions -------------------------------------------------------------

    async def register(self) -> User | None:
        user = User(f"soak-{uuid.uuid4().hex[:12]}@example.com", self.address())
        response = await self.gw.call("register", "POST", "/auth/register", expected=(201,), address=user.address,
                                      json_body={"email": user.email, "password": PASSWORD})
        if response is None or response.status != 201:
            return None
        user.headers = {"Authorization": f"Bearer {json.loads(response.body)['accessToken']}"}
        return user

    async def new_user(self) -> None:
        """Sign up, get an API key and a first conversation; then the user joins the pool."""
        user = await self.register()
        if user is None:
            return
        key = await self.gw.call("create_api_key", "POST", "/api-keys", expected=(201,), address=user.address,
                                 headers=user.headers, json_body={"name": "soak"})
        if key is not None and key.status == 201:
            user.api_key = json.loads(key.body)["key"]
        await self.create_conversation(user)
        self.users.append(user)

    async def setup(self, users: int, parallel: int = 6) -> None:
        """`users` users, a few at a time: each sign-up is a password hash, and the workers hash side by side."""
        pending = iter(range(users))

        async def registrar():
            for _ in pending:
                await self.new_user()

        await asyncio.gather(*(registrar() for _ in range(parallel)))
        self.victim = await self.register()
        if len(self.users) < users or self.victim is None:
            raise RuntimeError("the soak could not register its users; see the gateway log")

    async def login(self, user: User) -> None:
        response = await self.gw.call("login", "POST", "/auth/login", expected=(200,), address=user.address,
                                      json_body={"email": user.email, "password": PASSWORD})
        if response is not None and response.status == 200:
            user.headers = {"Authorization": f"Bearer {json.loads(response.body)['accessToken']}"}

    # --- conversations and chats ---------------------------------------------------------------------

    async def create_conversation(self, user: User, org_id: str | None = None) -> str | None:
        body = {"title": "soak", "systemPrompt": "Be brief.", **({"orgId": org_id} if org_id else {})}
        response = await self.gw.call("create_conversation", "POST", "/conversations", expected=(201,),
                                      address=user.address, headers=user.headers, json_body=body)
        if response is None or response.status != 201:
            return None
        conversation = json.loads(response.body)["id"]
        user.conversations.append(conversation)
        return conversation

    def _conversation(self, user: User) -> str:
        return self.random.choice(user.conversations[-3:])  # recent ones: histories grow, but slowly

    def _fault(self, kind: str) -> str | None:
        """Every so many chats of each kind, a fault: spread evenly, so even a short soak has some of each."""
        n = self.chats[kind] = self.chats.get(kind, 0) + 1
        if self.fault_500 and n % round(1 / self.fault_500) == round(1 / self.fault_500) // 2:
            return FAULT_500
        if self.fault_hang and n % round(1 / self.fault_hang) == 0:
            return FAULT_HANG
        return None

    async def chat_whole(self, user: User) -> None:
        conversation, fault, content = self._conversation(user), self._fault("whole"), f"whole {uuid.uuid4().hex}"
        response = await self.gw.call("chat_whole", "POST", f"/conversations/{conversation}/messages",
                                      expected=(502,) if fault == FAULT_500 else (504,) if fault else (201, 200),
                                      address=user.address, headers=user.headers, json_body={"content": content},
                                      fault=fault, completion_on={200: "success", 201: "success",
                                                                  502: "provider_error", 504: "timeout"})
        if response is not None and response.status in (200, 201):
            reply = json.loads(response.body)
            self.gw.record.chats.append(Chat(conversation, content, reply["assistantMessage"]["id"]))

    async def chat_stream(self, user: User) -> None:
        conversation, fault, content = self._conversation(user), self._fault("stream"), f"stream {uuid.uuid4().hex}"
        leave = 2 if fault is None and self.random.random() < LEAVE_EARLY else None
        seen = await self.gw.stream("chat_stream_left" if leave else "chat_stream",
                                    f"/conversations/{conversation}/stream", {"content": content},
                                    address=user.address, headers=user.headers, fault=fault, leave_after=leave)
        if seen.ended and seen.end_event is not None:
            self.gw.record.chats.append(Chat(conversation, content, seen.end_event["message"]["id"]))

    async def v1_completion(self, user: User) -> None:
        stream = self.random.random() < 0.3
        fault = self._fault("v1_stream" if stream else "v1")
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
        headers = {"Authorization": f"Bearer {user.api_key}"}
        if stream:
            await self.gw.stream("v1_stream", "/v1/chat/completions", body, address=user.address, headers=headers,
                                 fault=fault)
            return
        await self.gw.call("v1_completion", "POST", "/v1/chat/completions",
                           expected=(502,) if fault == FAULT_500 else (504,) if fault else (200,),
                           address=user.address, headers=headers, json_body=body, fault=fault,
                           completion_on={200: "success", 502: "provider_error", 504: "timeout"})

    async def read_messages(self, user: User) -> None:
        """Page back through a conversation's messages, two at a time, three pages at most."""
        path = f"/conversations/{self._conversation(user)}/messages?limit=2"
        for _ in range(3):
            response = await self.gw.call("list_messages", "GET", path, expected=(200,), address=user.address,
                                          headers=user.headers)
            cursor = json.loads(response.body).get("nextCursor") if response and response.status == 200 else None
            if not cursor:
                return
            path = path.split("&cursor=")[0] + f"&cursor={cursor}"

    async def list_conversations(self, user: User) -> None:
        path = "/conversations?limit=2"
        for _ in range(3):
            response = await self.gw.call("list_conversations", "GET", path, expected=(200,), address=user.address,
                                          headers=user.headers)
            cursor = json.loads(response.body).get("nextCursor") if response and response.status == 200 else None
            if not cursor:
                return
            path = f"/conversations?limit=2&cursor={cursor}"

    async def org_operations(self, owner: User) -> None:
        """An org with a member and a shared conversation the member can read; then the member leaves."""
        member = self.random.choice([u for u in self.users if u is not owner])
        response = await self.gw.call("create_org", "POST", "/orgs", expected=(201,), address=owner.address,
                                      headers=owner.headers, json_body={"name": "soak org"})
        if response is None or response.status != 201:
            return
        org = json.loads(response.body)["id"]
        added = await self.gw.call("add_member", "POST", f"/orgs/{org}/members", expected=(201,),
                                   address=owner.address, headers=owner.headers,
                                   json_body={"email": member.email, "role": "MEMBER"})
        conversation = await self.create_conversation(owner, org)
        await self.gw.call("list_members", "GET", f"/orgs/{org}/members", expected=(200,), address=owner.address,
                           headers=owner.headers)
        if added is None or added.status != 201 or conversation is None:
            return
        await self.gw.call("member_reads_org_conversation", "GET", f"/conversations/{conversation}",
                           expected=(200,), address=member.address, headers=member.headers)
        member_id = json.loads(added.body).get("userId") or json.loads(added.body).get("user", {}).get("id")
        if member_id:
            await self.gw.call("member_leaves", "DELETE", f"/orgs/{org}/members/{member_id}", expected=(204,),
                               address=member.address, headers=member.headers)

    # --- abuse ----------------------------------------------------------------------------------------

    async def password_flood(self) -> None:
        """Wrong passwords from one address, for one account or for made-up ones: 401 until a limit trips, then 429.

        The victim's account trips the per-account limit; the made-up emails, each
        tried once, only the per-address one.
        """
        email = self.victim.email if self.random.random() < 0.5 else f"nobody-{uuid.uuid4().hex[:8]}@example.com"
        await self.gw.call("wrong_password", "POST", "/auth/login", expected=(401, 429), address=self.flood_address,
                           json_body={"email": email, "password": "not the password"}, abuse=True)

    async def bad_input(self) -> None:
        user = self.random.choice(self.users)
        kind, expected, body, content_type = BAD_BODIES[self.bad_bodies % len(BAD_BODIES)]
        self.bad_bodies += 1
        await self.gw.call(kind, "POST", "/conversations", expected=expected, address=user.address,
                           headers=user.headers, raw_body=body(), content_type=content_type, abuse=True)

    async def bad_credentials(self) -> None:
        user = self.random.choice(self.users)
        forged = jwt.encode({"sub": "someone", "type": "access", "fresh": False, "jti": uuid.uuid4().hex,
                             "exp": int(time.time()) + 600}, "not-the-gateway-key-" * 3, algorithm="HS256")
        for kind, headers in (("no_token", {}), ("forged_token", {"Authorization": f"Bearer {forged}"}),
                              ("garbage_token", {"Authorization": "Bearer x.y.z"}),
                              ("unknown_api_key", {"Authorization": "Bearer sk-gw-" + "A" * 43})):
            await self.gw.call(kind, "GET", "/conversations", expected=(401,), address=user.address,
                               headers=headers, abuse=True)

    async def unknown_model(self) -> None:
        user = self.random.choice(self.users)
        await self.gw.call("unknown_model_chat", "POST", f"/conversations/{self._conversation(user)}/messages",
                           expected=(400,), address=user.address, headers=user.headers,
                           json_body={"content": "hi", "model": "no-such-model"}, abuse=True)
        await self.gw.call("unknown_model_v1", "POST", "/v1/chat/completions", expected=(404,),
                           address=user.address, headers={"Authorization": f"Bearer {user.api_key}"}, abuse=True,
                           json_body={"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]})


BAD_BODIES = [
    ("oversized_body", (413,), lambda: b'{"title": "' + b"x" * MAX_CONTENT_LENGTH + b'"}', "application/json"),
    ("text_body", (415,), lambda: b"title=plain", "text/plain"),
    ("malformed_json", (400,), lambda: b'{"title": ', "application/json"),
    ("nul_in_json", (400,), lambda: b'{"title": "a\\u0000b"}', "application/json"),
    ("lone_surrogate", (400,), lambda: b'{"title": "\\ud800"}', "application/json"),
    ("deep_nesting", (400,), lambda: b'{"title": ' + b"[" * 990 + b"]" * 990 + b"}", "application/json"),
]
