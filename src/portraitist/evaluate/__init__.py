"""`portraitist evaluate`: the thesis's comparison of training recipes (2.3, Fig. 11) as a command.

config.py         the settings (recipes, cadence, the evaluation prompts, the metric models)
prompts.py        the fixed set of images every checkpoint generates, and CLIP's texts for them
metrics.py        the metric-set interface, the catalogue of metric definitions (a plug-in's metric
                  set registers its own), and the photo metrics of thesis 1.3 (Image/Text
                  Alignment, LPIPS, identity) for one checkpoint
records.py        eval/metrics.jsonl, one line per recipe x checkpoint: the record a resumed run reads
settings.py       eval/settings.json, what the numbers depend on: a resumed run or a merge must match it
stage.py          trains each recipe once and measures it at its checkpoints through train's hook
summary.py        curves per recipe: mean and band over one or several evaluations; who leads
plots.py          one panel per metric, one line per recipe, against steps or training seconds
report.py         eval/report.html (plots, tables, image grids) and the merged reports

`--world` lives with the synthetic world (world/evaluate.py, world/metrics.py, world/sweep.py, and
its [evaluate.world] table in world/settings.py): it drives this package's `evaluate` with the
world's metric set.
"""
