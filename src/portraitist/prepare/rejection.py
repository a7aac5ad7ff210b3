"""Why a photo leaves the training set: a machine-readable code and a sentence for the user."""

from __future__ import annotations


class PhotoRejected(Exception):
    """One photo is unusable; the run goes on with the others (never a PortraitistError).

    Codes: empty, not_an_image, unreadable, too_large, no_person, multiple_people,
    face_too_small, duplicate, blurry, other_person.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message
