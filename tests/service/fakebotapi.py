"""A stand-in for Telegram's Bot API on loopback: it hands the bot what a test's user sends and
records what the bot sends back, speaking the same HTTP protocol python-telegram-bot uses."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from typing import Any, Self

import uvicorn
from servicekit import free_port, wait_for
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOKEN = "123456:TEST-TOKEN"
USER = {"id": 4242, "is_bot": False, "first_name": "Ann"}
BOT = {
    "id": 1,
    "is_bot": True,
    "first_name": "Portraitist",
    "username": "portraitist_test_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
CHAT = {"id": USER["id"], "type": "private", "first_name": USER["first_name"]}


class FakeBotAPI:
    """Run with `with FakeBotAPI() as telegram:`; `telegram.url` is the Bot API base URL."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.calls: list[tuple[str, dict[str, Any]]] = []  # (method, parameters) the bot sent
        self.files: dict[str, bytes] = {}
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._lock = threading.Lock()
        app = Starlette(
            routes=[
                Route(f"/bot{TOKEN}/{{method}}", self._method, methods=["GET", "POST"]),
                Route(f"/file/bot{TOKEN}/{{path:path}}", self._file),
            ]
        )
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        wait_for(lambda: self._server.started, 30, "the fake Bot API to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    # ---- what the user does
    def _message(self, **content: Any) -> dict[str, Any]:
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": CHAT,
            "from": USER,
            **content,
        }

    def _push(self, update: dict[str, Any]) -> None:
        with self._lock:
            self._updates.append({"update_id": next(self._update_ids), **update})

    def user_sends_command(self, command: str) -> None:
        self._push(
            {
                "message": self._message(
                    text=command, entities=[{"type": "bot_command", "offset": 0, "length": len(command)}]
                )
            }
        )

    def user_sends_photo(self, data: bytes, width: int, height: int) -> None:
        file_id = f"photo-{len(self.files)}"
        self.files[file_id] = data
        size = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "width": width,
            "height": height,
            "file_size": len(data),
        }
        self._push({"message": self._message(photo=[size])})

    def user_presses(self, data: str, on_message: dict[str, Any]) -> None:
        self._push(
            {
                "callback_query": {
                    "id": f"cb{next(self._update_ids)}",
                    "from": USER,
                    "chat_instance": "1",
                    "data": data,
                    "message": on_message,
                }
            }
        )

    # ---- what the bot did
    def sent(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [params for name, params in self.calls if name == method]

    def wait_sent(self, method: str, count: int = 1, timeout: float = 60) -> list[dict[str, Any]]:
        return wait_for(
            lambda: len(self.sent(method)) >= count and self.sent(method),
            timeout,
            f"the bot to call {method} {count} times",
        )

    # ---- the protocol
    async def _method(self, request: Request) -> Response:
        method = request.path_params["method"]
        params: dict[str, Any] = {}
        for key, value in (await request.form()).multi_items():
            params[key] = await value.read() if isinstance(value, UploadFile) else value
        if method != "getUpdates":
            with self._lock:
                self.calls.append((method, params))
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            return JSONResponse({"ok": False, "error_code": 404, "description": f"{method} not faked"}, 404)
        return JSONResponse({"ok": True, "result": await handler(params)})

    async def _getMe(self, params: dict[str, Any]) -> Any:
        return BOT

    async def _deleteWebhook(self, params: dict[str, Any]) -> Any:
        return True

    async def _getUpdates(self, params: dict[str, Any]) -> Any:
        offset = int(params.get("offset") or 0)
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), 1.0)
        while True:
            with self._lock:
                ready = [u for u in self._updates if u["update_id"] >= offset]
            if ready or time.monotonic() >= deadline:
                return ready
            await asyncio.sleep(0.05)

    def _bot_message(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": CHAT,
            "from": BOT,
            **content,
        }
        if "reply_markup" in params:
            message["reply_markup"] = json.loads(params["reply_markup"])
        return message

    async def _sendMessage(self, params: dict[str, Any]) -> Any:
        return self._bot_message(params, text=params["text"])

    async def _editMessageText(self, params: dict[str, Any]) -> Any:
        return self._bot_message(params, text=params["text"])

    async def _editMessageReplyMarkup(self, params: dict[str, Any]) -> Any:
        return self._bot_message(params, text="Pick styles, then press Start:")

    async def _answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        return True

    async def _sendChatAction(self, params: dict[str, Any]) -> Any:
        return True

    async def _getFile(self, params: dict[str, Any]) -> Any:
        file_id = params["file_id"]
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(self.files[file_id]),
            "file_path": f"photos/{file_id}.jpg",
        }

    async def _sendPhoto(self, params: dict[str, Any]) -> Any:
        return self._bot_message(
            params, photo=[{"file_id": "out", "file_unique_id": "out", "width": 1, "height": 1}]
        )

    async def _sendMediaGroup(self, params: dict[str, Any]) -> Any:
        return [
            self._bot_message(
                {}, photo=[{"file_id": f"out{i}", "file_unique_id": f"out{i}", "width": 1, "height": 1}]
            )
            for i, _ in enumerate(json.loads(params["media"]))
        ]

    async def _file(self, request: Request) -> Response:
        file_id = request.path_params["path"].removeprefix("photos/").removesuffix(".jpg")
        return Response(self.files[file_id], media_type="image/jpeg")
