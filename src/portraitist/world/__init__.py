"""A synthetic world of procedurally drawn people, where likeness can be measured exactly (docs/world.md).

It plugs into the product the way any model family or face model would (plugin.py registers it):
family.py (its base as a model family, `--base world`), identity.py (its judges as rank's identity
model), metrics.py (its metric set for `evaluate`), settings.py (its [evaluate.world] table and
rank's world_judges), evaluate.py and sweep.py (`evaluate --world`).
Nothing outside world/ and cli/ imports it.
"""
