"""The ``distilnas`` commands: one module per command (or group), in the order ``distilnas --help`` lists them.

Each module has ``add_parser(sub)``, which adds its sub-parser(s) with ``func`` set to the handler (it
takes the parsed ``argparse.Namespace`` and returns the exit status), and may have
``interrupted(args) -> str``: what an interrupted run kept and how a rerun continues (checked on disk).
Handlers import the library lazily, so that ``distilnas --help`` does not load torch.
"""

COMMANDS: tuple[str, ...] = (
    "search",         # search CONFIG: train a supernet, score and select architectures
    "score",          # score CHECKPOINT --archs FILE: shared-weight accuracy of given architectures
    "rank",           # rank PRED TRUTH: rank correlation against a ground truth
    "report",         # report RUN: figures and report.md
    "config",         # config [CONFIG]: a search config with every default
    "train",          # train ARCH: one architecture from scratch
    "retrain",        # retrain RESULT_OR_ARCH: a searched architecture from scratch, exported
    "random_search",  # random-search CONFIG: the best of N short trainings
    "proxy",          # proxy NAME: zero-cost proxy scores
    "bench",          # bench build / report: ground-truth tables
    "dna",            # dna-merge, dna-search, dna-fit, dna-score
    "list",           # list: what is registered
)
