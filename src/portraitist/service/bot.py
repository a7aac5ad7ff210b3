"""`portraitist bot`: the Telegram bot of thesis 2.3, as a thin client of the HTTP API.

A chat is a portraitist user: the bot signs it up on first contact and keeps its API token in
DATA_DIR/bot-users.json. Photos sent to the bot go to POST /v1/photos and the bot answers
with prepare's verdict on each; once there are enough, inline buttons pick styles and start
a job; progress arrives as one message edited in place, and the k best portraits as an album.
Nothing here knows about jobs beyond what the API says, so the bot runs anywhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import httpx
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto, Update
from telegram.constants import ChatAction
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from portraitist.errors import PortraitistError
from portraitist.service.settings import Settings
from portraitist.workspace import write_json_atomic

log = logging.getLogger(__name__)

MIN_PHOTOS = 5
MAX_PHOTOS = 20
# Telegram allows about one edit per second per chat; progress needs far fewer
EDIT_EVERY_S = 3.0
START = "start"

WELCOME = (
    "Hi! I make portraits of you in new styles from a handful of ordinary photos.\n\n"
    f"1. Send me {MIN_PHOTOS}-{MAX_PHOTOS} photos of yourself: only you in the picture, face visible, "
    "different days and light if you can. I tell you at once if a photo cannot be used, and why.\n"
    "2. Pick styles (and the model, where there is a choice) with the buttons and press Start.\n"
    "3. I learn your face (this takes a while), then send you the best portraits.\n\n"
    "/styles shows the buttons again, /forget deletes everything I have of you."
)


class TokenBook:
    """Chat id -> API token, in a JSON file only the bot's user can read."""

    def __init__(self, path: Path):
        self.path = path
        self.tokens: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}

    def get(self, chat_id: int) -> str | None:
        return self.tokens.get(str(chat_id))

    def set(self, chat_id: int, token: str | None) -> None:
        if token is None:
            self.tokens.pop(str(chat_id), None)
        else:
            self.tokens[str(chat_id)] = token
        write_json_atomic(self.path, self.tokens)
        os.chmod(self.path, 0o600)


class PortraitBot:
    """The handlers; each talks to the API with the chat's own token."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.http = httpx.AsyncClient(base_url=settings.api_url, timeout=httpx.Timeout(120, connect=10))
        self.book = TokenBook(settings.data_dir / "bot-users.json")
        self.styles: list[str] = []
        self.bases: list[str] = []  # the server's allowed_bases: offered as buttons when there are several

    async def _token(self, chat_id: int) -> str:
        """The chat's API token, signing the chat up on first contact."""
        token = self.book.get(chat_id)
        if token is None:
            # the admin token, when set, vouches for the sign-up: every chat signs up from this one
            # address, which the per-address limits would otherwise stop after a few
            admin = self.settings.admin_token
            response = await self.http.post(
                "/v1/users", headers={"Authorization": f"Bearer {admin}"} if admin else {}
            )
            response.raise_for_status()
            token = response.json()["token"]
            self.book.set(chat_id, token)
        return token

    async def _api(self, chat_id: int, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {await self._token(chat_id)}"}
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._token(update.effective_chat.id)
        await update.effective_message.reply_text(WELCOME)

    async def photo(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """One photo (or image file) in: upload it and say what prepare thinks of it."""
        chat_id = update.effective_chat.id
        message = update.effective_message
        attachment = message.photo[-1] if message.photo else message.document  # the largest size
        data = await (await attachment.get_file()).download_as_bytearray()
        name = getattr(attachment, "file_name", None) or f"{attachment.file_unique_id}.jpg"
        response = await self._api(chat_id, "POST", "/v1/photos", files=[("files", (name, bytes(data)))])
        if response.status_code != 200:
            await message.reply_text(f"I could not take that photo: {response.json().get('detail')}")
            return
        record = response.json()["photos"][0]
        stored = len((await self._api(chat_id, "GET", "/v1/photos")).json()["photos"])
        if record["status"] == "rejected":
            await message.reply_text(f"✗ I cannot use this one: {record['message']}")
        elif stored < MIN_PHOTOS:
            await message.reply_text(f"✓ Got it ({stored} so far; send at least {MIN_PHOTOS}).")
        else:
            await message.reply_text(f"✓ Got it ({stored} photos).")
        if record["status"] == "kept" and stored == MIN_PHOTOS:
            await self.show_styles(update, context)

    async def show_styles(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if not self.styles:
            options = (await self._api(update.effective_chat.id, "GET", "/v1/options")).json()
            self.styles = [style["name"] for style in options["styles"]]
            self.bases = options["bases"]
        chosen = context.chat_data.setdefault("styles", set(self.styles[:2]))
        await update.effective_message.reply_text(
            "Pick styles, then press Start:", reply_markup=self.keyboard(chosen, self._base(context))
        )

    def _base(self, context: ContextTypes.DEFAULT_TYPE) -> str | None:
        """The chat's chosen base model: the bot's job's own until the user picks one."""
        return context.chat_data.setdefault("base", self.settings.bot_job.get("base"))

    def keyboard(self, chosen: set[str], base: str | None) -> InlineKeyboardMarkup:
        """Style toggles two a row; the base models (SD 1.x, SDXL, ...) when the server allows several;
        Start."""
        buttons = [
            InlineKeyboardButton(("✅ " if name in chosen else "") + name, callback_data=f"style:{name}")
            for name in self.styles
        ]
        rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
        if len(self.bases) > 1:
            rows.append([
                InlineKeyboardButton(("✅ " if name == base else "") + name, callback_data=f"base:{name}")
                for name in self.bases
            ])  # fmt: skip
        rows.append([InlineKeyboardButton("▶ Start", callback_data=START)])
        return InlineKeyboardMarkup(rows)

    def job_request(self, styles: set[str], base: str | None) -> dict[str, Any]:
        """The job the Start button asks for: the bot's job settings, the chosen styles and base."""
        return {**self.settings.bot_job, "styles": sorted(styles) or None, **({"base": base} if base else {})}

    async def button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        chosen: set[str] = context.chat_data.setdefault("styles", set(self.styles[:2]))
        if query.data and query.data.startswith(("style:", "base:")):
            kind, _, name = query.data.partition(":")
            if kind == "style":
                chosen ^= {name}
            else:
                context.chat_data["base"] = name
            await query.answer()
            await query.edit_message_reply_markup(self.keyboard(chosen, self._base(context)))
            return
        chat_id = update.effective_chat.id
        body = self.job_request(chosen, self._base(context))
        response = await self._api(chat_id, "POST", "/v1/jobs", json=body)
        if response.status_code != 201:
            await query.answer()
            await query.message.reply_text(f"I could not start: {response.json().get('detail')}")
            return
        await query.answer("Started!")
        job_id = response.json()["id"]
        status = await query.message.reply_text("Queued: waiting for a free GPU…")
        context.application.create_task(self.follow(context.bot, chat_id, job_id, status.message_id))

    async def forget(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat_id = update.effective_chat.id
        if self.book.get(chat_id):
            await self._api(chat_id, "DELETE", "/v1/me")
            self.book.set(chat_id, None)
        context.chat_data.clear()
        await update.effective_message.reply_text("Done: your photos, models and portraits are deleted.")

    async def follow(self, bot: Any, chat_id: int, job_id: str, status_message: int) -> None:
        """Stream the job's events into one edited message; then the album, or the reason it failed."""
        last_text, edited_at, event = "", 0.0, {}
        headers = {"Authorization": f"Bearer {await self._token(chat_id)}"}
        async with self.http.stream(
            "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=httpx.Timeout(None, connect=10)
        ) as stream:
            async for line in stream.aiter_lines():
                if not line.startswith("data: "):
                    continue
                event = json.loads(line.removeprefix("data: "))
                text = _progress_text(event)
                final = event["status"] in ("succeeded", "failed", "cancelled")
                if text != last_text and (final or time.monotonic() - edited_at >= EDIT_EVERY_S):
                    await bot.edit_message_text(text, chat_id=chat_id, message_id=status_message)
                    last_text, edited_at = text, time.monotonic()
        if event.get("status") == "succeeded":
            await self.send_album(bot, chat_id, job_id)
        elif event.get("status") == "failed":
            job = (await self._api(chat_id, "GET", f"/v1/jobs/{job_id}")).json()
            await bot.send_message(chat_id, f"Sorry, that did not work:\n{job.get('error')}")

    async def send_album(self, bot: Any, chat_id: int, job_id: str) -> None:
        await bot.send_chat_action(chat_id, ChatAction.UPLOAD_PHOTO)
        results = (await self._api(chat_id, "GET", f"/v1/jobs/{job_id}/results")).json()
        images = []
        for portrait in results["portraits"][:10]:  # an album holds at most 10
            image = await self.http.get(portrait["url"])
            image.raise_for_status()
            images.append(image.content)
        if len(images) == 1:  # an album needs two or more
            await bot.send_photo(chat_id, images[0], caption="Your portrait")
        else:
            await bot.send_media_group(
                chat_id, [InputMediaPhoto(data) for data in images], caption="Your portraits"
            )

    async def resume(self, application: Application) -> None:
        """After a restart: keep following the jobs that are still running."""
        for chat_id in list(self.book.tokens):
            response = await self._api(int(chat_id), "GET", "/v1/jobs")
            for job in response.json().get("jobs", []) if response.status_code == 200 else []:
                if job["status"] in ("queued", "running"):
                    status = await application.bot.send_message(
                        int(chat_id), "I am back; still working on it…"
                    )
                    application.create_task(
                        self.follow(application.bot, int(chat_id), job["id"], status.message_id)
                    )


def _progress_text(event: dict[str, Any]) -> str:
    if event["status"] == "queued":
        return f"Queued: {event.get('message') or 'waiting for a free GPU'}…"
    if event["status"] != "running":
        return {"succeeded": "Done! Here they are:", "failed": "Failed.", "cancelled": "Cancelled."}[
            event["status"]
        ]
    steps = f" {event['step']}/{event['total']}" if event.get("total") else ""
    eta = f", about {max(1, round(event['eta_s'] / 60))} min left" if event.get("eta_s") else ""
    return f"Working: {event.get('stage') or 'starting'}{steps}{eta}"


def build_application(settings: Settings) -> Application:
    bot = PortraitBot(settings)
    api = settings.telegram_api_url.rstrip("/")
    application = (
        ApplicationBuilder()
        .token(settings.telegram_token)
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .post_init(bot.resume)
        .build()
    )
    application.add_handler(CommandHandler(["start", "help"], bot.start))
    application.add_handler(CommandHandler("styles", bot.show_styles))
    application.add_handler(CommandHandler("forget", bot.forget))
    application.add_handler(MessageHandler(filters.PHOTO | filters.Document.IMAGE, bot.photo))
    application.add_handler(CallbackQueryHandler(bot.button))
    return application


def run_bot(settings: Settings) -> None:
    """Long-poll the Bot API until interrupted."""
    if not settings.telegram_token:
        raise PortraitistError("Set PORTRAITIST_TELEGRAM_TOKEN to the bot's token from @BotFather.")
    asyncio.set_event_loop(asyncio.new_event_loop())
    build_application(settings).run_polling(allowed_updates=Update.ALL_TYPES)
