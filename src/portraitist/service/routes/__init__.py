"""The HTTP API's routes, one module per resource, each with its own router (api.py mounts them
under /v1), and the pages outside the API. Routes validate, call the data layer (accounts.py,
photos.py, jobs.py, storage.py) and shape its answers into schemas.py's bodies."""
