"""Users: signing up, what the user has, and deleting the user with everything of theirs."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status

from portraitist.service import accounts, jobs, photos
from portraitist.service.auth import same_secret
from portraitist.service.dependencies import (
    BearerCredentials,
    CurrentUser,
    DatabaseDep,
    QueueDep,
    SessionDep,
    SettingsDep,
    StorageDep,
    too_many,
)
from portraitist.service.schemas import MeOut, TokenOut

router = APIRouter(tags=["users"])


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=TokenOut)
def create_user(
    request: Request, settings: SettingsDep, db: DatabaseDep, credentials: BearerCredentials
) -> TokenOut:
    """Sign up: a new user and its API token (open sign-up, or the admin token when signup = admin);
    429 past signups_per_hour from one address, unless the admin token vouches for it (the bot)."""
    given = credentials.credentials if credentials else ""
    vouched = bool(settings.admin_token) and same_secret(given, settings.admin_token)
    if settings.signup == "admin" and not vouched:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Sign-up needs the admin token on this server.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    address = None if vouched else (request.client.host if request.client else "")
    try:
        user_id, token = accounts.sign_up(db, address, settings.signups_per_hour)
    except accounts.TooManySignups as exc:
        raise too_many(str(exc), exc.retry_after_s) from exc
    return TokenOut(id=user_id, token=token)


@router.get("/me", response_model=MeOut)
def me(user: CurrentUser, session: SessionDep) -> MeOut:
    return MeOut(
        id=user.id,
        created_at=user.created_at,
        photos=photos.count_of_user(session, user.id),
        jobs=jobs.count_of_user(session, user.id),
    )


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT)
def delete_me(
    user: CurrentUser, db: DatabaseDep, queue: QueueDep, storage: StorageDep, session: SessionDep
) -> Response:
    """Delete the user and everything of theirs: photos, models, results, jobs, from storage, the
    queue and the database (scrubbed from its files, not only unlinked).

    A job still running stops at its next progress report (its row is gone) and removes what it
    uploaded after this.
    """
    session.close()  # its read snapshot would hold up the scrub of the database files
    accounts.erase_user(db, queue, storage, user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
