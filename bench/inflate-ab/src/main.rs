//! Inflates every `.json.gz` file under the given directory (gzip with CRC check, as the
//! Bronze reader does) `repeat` times on one thread; prints MB/s of output.
//! usage: inflate-ab DIR [REPEAT]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.to_string_lossy().ends_with(".json.gz") {
            out.push(p);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let repeat: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut paths = Vec::new();
    files(Path::new(&args[1]), &mut paths);
    paths.sort();
    let data: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).expect("read")).collect();
    let gz: usize = data.iter().map(Vec::len).sum();
    let mut buf = Vec::new();
    let mut best = f64::MAX;
    let mut raw = 0;
    for _ in 0..repeat {
        let t = Instant::now();
        raw = 0;
        for d in &data {
            buf.clear();
            flate2::read::MultiGzDecoder::new(&d[..]).read_to_end(&mut buf).expect("inflate");
            raw += buf.len();
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{{\"runtime_detection\": {}, \"files\": {}, \"gz_bytes\": {gz}, \"raw_bytes\": {raw}, \"secs\": {best:.4}, \"raw_mb_s\": {:.0}}}",
        cfg!(feature = "runtime-detection"),
        data.len(),
        raw as f64 / 1e6 / best
    );
}
