"""The one exception type for problems a user can cause and fix."""


class PortraitistError(Exception):
    """A user-caused problem (bad photo set, bad config, missing model).

    The message says what went wrong and what to do instead; the CLI prints it without a
    traceback and exits non-zero, the API answers 4xx with the same text.
    """


class MachineError(PortraitistError):
    """The machine ran out of something (GPU memory, disk) while the user's request was sound.

    Told to a CLI user like any PortraitistError (what to do, no traceback); a service worker
    retries the job instead of failing it, since another worker, or this one later, may succeed.
    """
