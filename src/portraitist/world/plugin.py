"""Everything the synthetic world registers with the product, in one import: its model family and
`--base world` (world/family.py), its judges as rank's identity model (world/identity.py), its
metrics in evaluate's catalogue (world/metrics.py) and its settings in evaluate's and rank's
tables (world/settings.py).

The CLI imports this module; nothing below the CLI imports the world.
"""

from portraitist.world import family, identity, metrics, settings  # noqa: F401  (importing registers)
