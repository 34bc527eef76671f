"""`emenet synth`, `index` and `extract-audio`: data preparation from the shell.

    emenet synth --out data/synth            # a small synthetic dataset in the Aff-wild2 layout
    emenet index --data_root data/affwild2 --vis runs/vis   # which release, what it holds, label pictures
    emenet extract-audio --video_dir data/affwild2/videos --audio_outdir data/affwild2/audio  # for EMENet-VA
"""
from __future__ import annotations

import argparse
import json

from emenet.cli.options import add_data_arguments, add_output_arguments, add_overwrite_argument, non_negative_int
from emenet.errors import EMENetInputError


def add_synth_arguments(p: argparse.ArgumentParser) -> None:
    add_output_arguments(p, required=True, help="output folder (Aff-wild2 layout)",
                         overwrite_help="write into a non-empty folder")
    p.add_argument("--num_videos", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--release", default="abaw2", choices=["abaw2", "abaw3", "abaw5", "abaw6", "mtl"],
                   help="the Aff-wild2 release's layout to write (8 expression classes after abaw2)")
    p.set_defaults(func=cmd_synth)


def cmd_synth(args: argparse.Namespace) -> None:
    from emenet.data.synth import generate_synthetic_dataset
    summary = generate_synthetic_dataset(args.out, num_videos=args.num_videos, seed=args.seed, overwrite=args.overwrite,
                                         release=args.release)
    print(f"synthetic Aff-wild2 data ({args.release} layout) written to {summary.out_dir}")


def add_index_arguments(p: argparse.ArgumentParser) -> None:
    add_data_arguments(p, root_help="Aff-wild2 root of any release (or `emenet synth` output)")
    p.add_argument("--cache_dir", default=None)
    p.add_argument("--rebuild", action="store_true", help="parse the annotation files again even if cached")
    p.add_argument("--vis", default=None, metavar="DIR", help="write the AU-frequency and task-affinity pictures here")
    add_overwrite_argument(p, "replace existing --vis pictures")
    p.set_defaults(func=cmd_index)


def cmd_index(args: argparse.Namespace) -> None:
    from emenet.data.affwild2 import load_affwild2_index
    from emenet.viz.label_pictures import check_pictures_free, index_summary, write_index_pictures
    if args.vis:  # before the index is built: refuse to replace pictures first
        check_pictures_free(args.vis, args.overwrite)
    index = load_affwild2_index(args.data_root, cache_dir=args.cache_dir, rebuild=args.rebuild,
                                annotations_dir=args.annotations_dir, crops_dirs=args.crops_dir)
    print(json.dumps(index_summary(index), indent=2))
    if args.vis:
        for path in write_index_pictures(index, args.vis, args.overwrite):
            print(f"wrote {path}")


def add_extract_audio_arguments(p: argparse.ArgumentParser) -> None:
    from emenet.audio import SAMPLE_RATE
    p.add_argument("--video_dir", required=True, help="folder of the raw videos, searched recursively "
                   "(e.g. <aff-wild2>/videos)")
    p.add_argument("--audio_outdir", required=True, help="where the decoded tracks go; train with --audio_dir set to it")
    p.add_argument("--sr", type=int, default=SAMPLE_RATE, help="sample rate (default %(default)s, MarbleNet's)")
    p.add_argument("--num_workers", type=non_negative_int, default=1,
                   help="videos decoded in parallel (default %(default)s)")
    add_overwrite_argument(p, "decode again even where a fresh file exists")
    p.add_argument("--no_progress", action="store_true")
    p.set_defaults(func=cmd_extract_audio)


def cmd_extract_audio(args: argparse.Namespace) -> None:
    from emenet.data.extract_audio import REPORT_NAME, extract_audio_files
    report = extract_audio_files(args.video_dir, args.audio_outdir, args.sr, args.overwrite, args.num_workers,
                                 progress=not args.no_progress)
    print(f"{report.audio_outdir}: {len(report.decoded)} decoded, {len(report.cached)} already there, "
          f"{len(report.failed)} failed (see {report.audio_outdir / REPORT_NAME})")
    if report.failed:
        raise EMENetInputError(f"{len(report.failed)} video(s) could not be decoded; first: {report.failed[0][1]}")
