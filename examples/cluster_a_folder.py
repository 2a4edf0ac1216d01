"""Cluster a folder of images from Python: labels, a report and a registered model in three lines.

    python examples/cluster_a_folder.py /path/to/photos --model_name photos
    python examples/cluster_a_folder.py                  # the built-in digits

The study is tracked in MLflow (``$MLFLOW_TRACKING_URI``, else ./mlflow.db), as ``mlflow run . -e tune``
tracks it; ``--no-tracking`` writes nothing but the cache (and the report you ask for).
"""

import argparse

import selector

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("data", nargs="?", default="digits", help="an image folder, a vector file or 'digits'")
parser.add_argument("--encoder", default=None, help="default: efficientnet_lite0 for images")
parser.add_argument("--n_trials", type=int, default=30)
parser.add_argument("--model_name", default="my-clusters")
parser.add_argument("--no-tracking", dest="tracking", action="store_false")
args = parser.parse_args()

result = selector.search(args.data, encoder=args.encoder, n_trials=args.n_trials, tracking=args.tracking)
print(result)
print(result.clusters().head())                 # id, cluster (−1 = noise), confidence, label when known
print("report:", result.report("report.html"))  # one self-contained page
if args.tracking:
    registration = result.register(args.model_name)  # @champion moves only to a better model
    print(f"registered {args.model_name} version {registration.version}; serve it with "
          f"`mlflow models serve -m models:/{args.model_name}@champion --env-manager local`")
