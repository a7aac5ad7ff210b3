"""Everything the synthetic world registers with the product, in one import: its model family and
`--base world` (world/family.py), its judges as rank's identity model (world/identity.py) and its
metrics in evaluate's catalogue (world/metrics.py).

The CLI imports this module; nothing below the CLI imports the world.
"""

from portraitist.world import family, identity, metrics  # noqa: F401  (importing them registers them)
