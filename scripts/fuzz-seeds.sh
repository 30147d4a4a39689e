#!/usr/bin/env bash
# Rewrites the committed seed corpus fuzz/corpus/<target>/ from
# fuzz/src/seeds.rs (hand-made inputs, each named for what it exercises).
# Stable Rust is enough; the files are a few dozen small ones per target.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
cargo test --lib --quiet seeds
cargo run --quiet --example write_seeds
