//! Writes the committed seed corpus: `cargo run --example write_seeds` in
//! `fuzz/` (scripts/fuzz-seeds.sh does it). Each file is named for what it
//! does; rerunning rewrites the same files.

use std::path::Path;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("the corpus directory can be made");
    std::fs::write(dir.join(name), bytes).expect("a seed can be written");
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut n = 0;
    for (name, bytes, _) in safesock_fuzz::seeds::calls() {
        write(&root.join("calls"), name, &bytes);
        n += 1;
    }
    for (name, bytes) in safesock_fuzz::seeds::addr() {
        write(&root.join("addr"), &name, &bytes);
        n += 1;
    }
    for (name, bytes) in safesock_fuzz::seeds::messages() {
        write(&root.join("messages"), &name, &bytes);
        n += 1;
    }
    println!("wrote {n} seeds under {}", root.display());
}
