#!/usr/bin/env bash
# The main job, from nothing: install what is missing, build, import
# Fashion-MNIST into a kiln dataset, train the example MLP, evaluate it on
# the test split. Everything it makes lands in quickstart/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
scripts/build.sh build
kiln=build/kiln
fm=/usr/share/datasets/fashion-mnist
mkdir -p quickstart
echo "== import Fashion-MNIST"
$kiln data import fashion-mnist \
  --idx $fm/train-images-idx3-ubyte.gz $fm/train-labels-idx1-ubyte.gz \
  --test-idx $fm/t10k-images-idx3-ubyte.gz $fm/t10k-labels-idx1-ubyte.gz \
  --classes "T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot" \
  -o quickstart/fashion-mnist.h5
echo "== train examples/fashion-mnist-mlp.yaml"
$kiln train examples/fashion-mnist-mlp.yaml --data quickstart/fashion-mnist.h5 --out quickstart/mlp "$@"
echo "== evaluate on the test split"
$kiln eval quickstart/mlp/model.h5 --data quickstart/fashion-mnist.h5 --split test
