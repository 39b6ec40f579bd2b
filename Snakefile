# Ouroboros: recursive training of generative models on their own output.
# The default study is config/config.yaml; published experiments are in config/studies/.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


# The config is checked against config/schema.yaml (and every kind's own schema) in rules/common.smk,
# before any job: each problem is one line naming the key and the file and line that set it.

report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/generate.smk"
include: "rules/evaluate.smk"
include: "rules/prune.smk"
include: "rules/report.smk"
include: "rules/track.smk"


localrules:
    all,


rule all:
    input:
        final_outputs(),
    default_target: True


onsuccess:
    print(closing_line())
