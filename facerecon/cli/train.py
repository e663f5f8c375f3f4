"""``facerecon train corpus|regressor|posmap``: make the training corpus, and train the regressor or the
position-map network.

* ``facerecon train corpus --split train|val --data DATA -o DIR``: fit every face of the split's photos and video
  frames (cached in ``DIR/subjects``) and render the self-augmented views into ``DIR`` (:mod:`facerecon.train.corpus`;
  resumes where it stopped).
* ``facerecon train regressor --config FILE -o DIR [--device auto|cpu|cuda]``: train (or resume) the regressor
  (:mod:`facerecon.train.regressor`); validation figures are printed as it goes; the weights end in
  ``DIR/regressor.safetensors``. The shipped config: ``facerecon/train/configs/regressor.json``.
* ``facerecon train posmap --config FILE -o DIR [--device ...]``: train (or resume) the UV position-map network of
  paper 002 on the same corpus (:mod:`facerecon.train.posmap`); the weights end in ``DIR/posmap.safetensors``. The
  shipped config: ``facerecon/train/configs/posmap.json`` (``posmap-r2.json``: the r2 weight-mask ablation).

Exit code: 0 on success, 2 for a bad command line or config, 8 when some pictures of a split gave no face (they are
listed; the corpus is written from the others).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from facerecon.cli.exit_codes import ExitCode


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train facerecon's networks", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="network", metavar="WHAT", required=True)

    corpus = commands.add_parser("corpus", help="fit photos and render the regressor's training corpus")
    corpus.add_argument("--split", choices=("train", "val"), required=True, help="which people (see facerecon.train.subjects)")
    corpus.add_argument("--data", type=Path, default=Path("../shared/data"), help="the data folder (default: %(default)s)")
    corpus.add_argument("-o", "--output", type=Path, required=True, help="the corpus folder")
    corpus.add_argument("--config", type=Path, help="a corpus config JSON (facerecon.train.corpus.CorpusConfig)")
    corpus.add_argument("--views", type=int, help="views per subject (overrides the config)")
    corpus.add_argument("--frames-per-clip", type=int, default=4, help="frames taken from each video (default: %(default)s)")
    corpus.add_argument("--workers", type=int, default=1, help="rendering processes (default: %(default)s)")
    corpus.add_argument("--part", metavar="K/N", help="only fit every N-th picture from the K-th (0-based) into the cache, "
                        "and render nothing: run N such processes at once, then once without --part")
    corpus.add_argument("--quiet", action="store_true", help="no progress bars")
    corpus.set_defaults(func=run_corpus)

    networks = (("regressor", "train the face regressor on a corpus", "TrainConfig", run_regressor),
                ("posmap", "train the UV position-map network (paper 002) on a corpus", "PosMapTrainConfig", run_posmap))
    for name, purpose, config_class, run in networks:
        network = commands.add_parser(name, help=purpose)
        network.add_argument("--config", type=Path, required=True, help=f"the training config JSON ({config_class})")
        network.add_argument("-o", "--output", type=Path, required=True, help="the run folder (checkpoints, weights)")
        network.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: %(default)s)")
        network.add_argument("--no-resume", action="store_true", help="start again even if the folder has a checkpoint")
        network.add_argument("--quiet", action="store_true", help="no progress bar")
        network.set_defaults(func=run)


def _usage(message: str) -> int:
    print(f"facerecon train: error: {message}", file=sys.stderr)
    return ExitCode.USAGE


def run_corpus(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from facerecon.pipeline.setup import load_model
    from facerecon.train.corpus import CorpusConfig, write_corpus
    from facerecon.train.subjects import fit_subjects, split_sources

    try:
        config = CorpusConfig.from_json(args.config.read_text()) if args.config else CorpusConfig()
        if args.views is not None:
            config = CorpusConfig.from_json(json.dumps({**json.loads(config.to_json()), "views_per_subject": args.views}))
        sources = split_sources(args.data, args.split, frames_per_clip=args.frames_per_clip)
        if args.part:
            k, n = (int(v) for v in args.part.split("/"))
            if not 0 <= k < n:
                raise ValueError(f"--part: expected K/N with 0 <= K < N, got {args.part}")
            sources = sources[k::n]
    except (OSError, ValueError, TypeError) as err:
        return _usage(str(err))
    model = load_model(progress=not args.quiet)
    with tqdm(total=len(sources), desc=f"fitting {args.split}", unit="picture", disable=args.quiet, file=sys.stderr) as bar:
        report = fit_subjects(model, sources, args.output / "subjects", progress=lambda done, total: bar.update(done - bar.n))
    for name, reason in report.failures:
        print(f"facerecon: {name}: {reason}", file=sys.stderr)
    if not report.subjects:
        return _usage(f"no face in the {args.split} split's {len(sources)} pictures")
    if args.part:
        print(f"{args.output / 'subjects'}: {len(report.subjects)} subjects of part {args.part}")
        return ExitCode.PARTIAL if report.failures else ExitCode.OK
    with tqdm(total=len(report.subjects), desc=f"rendering {args.split}", unit="subject", disable=args.quiet,
              file=sys.stderr) as bar:  # fmt: skip
        written = write_corpus(model, report.subjects, args.output, config, split=args.split, workers=args.workers,
                               progress=lambda done, total: bar.update(done - bar.n))  # fmt: skip
    print(f"{args.output}: {len(written.views)} subjects, {sum(written.views.values())} face views "
          f"({len(written.reused)} shards reused), {len(report.failures)} pictures without a face")  # fmt: skip
    return ExitCode.PARTIAL if report.failures else ExitCode.OK


def run_regressor(args: argparse.Namespace) -> int:
    from facerecon.train.regressor import TrainConfig, train_regressor

    return _train(args, TrainConfig, train_regressor, lambda terms: terms["loss"])


def run_posmap(args: argparse.Namespace) -> int:
    from facerecon.train.posmap import PosMapTrainConfig, train_posmap

    return _train(args, PosMapTrainConfig, train_posmap, lambda loss: loss)


def _train(args: argparse.Namespace, config_class, train, step_loss) -> int:
    """Read the config file, train (or resume) with a progress bar and validation lines, print the weights' SHA-256
    and figures; ``step_loss`` takes the loss out of what the trainer reports each step."""
    from tqdm import tqdm

    from facerecon.models import load_model

    try:
        config = config_class.from_json(args.config.read_text())
    except (OSError, ValueError, TypeError) as err:
        return _usage(f"{args.config}: {err}")
    model = load_model()
    bar = tqdm(total=config.steps, desc="training", unit="step", disable=args.quiet, file=sys.stderr)

    def on_step(step: int, report) -> None:
        if bar.n == 0 and step > 1:
            bar.update(step - 1)
        bar.update(1)
        bar.set_postfix(loss=f"{step_loss(report):.4f}", refresh=False)

    def on_eval(step: int, metrics: dict[str, float]) -> None:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        (bar.write if not args.quiet else print)(f"step {step}: validation {shown}")

    try:
        result = train(model, config, args.output, device=args.device, resume=not args.no_resume, on_step=on_step, on_eval=on_eval)
    except (FileNotFoundError, ValueError) as err:
        bar.close()
        return _usage(str(err))
    bar.close()
    print(f"{result.weights}: sha256 {result.sha256}")
    print(json.dumps(result.metrics, indent=1, sort_keys=True))
    return ExitCode.OK
