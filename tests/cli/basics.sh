#!/usr/bin/env bash
# Version, help on every command, usage errors, config docs and check.
source "$(dirname "$0")/lib.sh"

expect_ok "kiln version" "$KILN" version
grep -q '^backends: cpu' out.txt || fail "version does not name the backends"
for cmd in data train eval predict config; do
  expect_ok "kiln $cmd --help" "$KILN" "$cmd" --help
  grep -q '^usage: kiln' out.txt || fail "$cmd --help prints no usage"
done
expect_ok "kiln --help" "$KILN" --help
grep -q 'exit codes' out.txt || fail "--help lacks the exit codes"
expect_fail "unknown command" 2 "unknown command" "$KILN" frobnicate
expect_fail "train without --data" 2 "required" "$KILN" train x.yaml
expect_fail "unknown option" 2 "unknown option" "$KILN" eval m.h5 --data d.h5 --bogus
expect_fail "bad --threads" 2 "whole number" "$KILN" train x.yaml --data d --out o --threads two
expect_ok "config docs" "$KILN" config docs
for key in train.epochs train.optimizer.lr model.layers model.input train.clip_norm; do
  grep -q "$key" out.txt || fail "config docs lacks $key"
done
expect_ok "config check example" "$KILN" config check "$KILN_SRC/examples/fashion-mnist-mlp.yaml"
expect_fail "config check --set unknown key" 5 "train.epoch" \
  "$KILN" config check "$KILN_SRC/examples/fashion-mnist-mlp.yaml" --set train.epoch=3
printf 'model:\n  input: [4]\n  layers:\n    - type: dense\n      units: 3\ntrain:\n  epochs: ten\n' > bad.yaml
expect_fail "config wrong type names file:line:col and key" 5 "bad.yaml:7:[0-9]+: train.epochs" \
  "$KILN" config check bad.yaml
expect_fail "missing config file" 3 "nope.yaml" "$KILN" config check nope.yaml
finish
