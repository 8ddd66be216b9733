//! `ember info` and `ember dataset info`: what this machine runs, and what a dataset holds.

use serde::Serialize;

use crate::error::Result;

/// CPU features, kernel paths and threads, as text.
pub fn machine_info() -> String {
    let mut s = format!("ember {}\n", env!("CARGO_PKG_VERSION"));
    let levels: Vec<&str> = ember_tensor::simd::Level::available()
        .iter()
        .map(|l| l.name())
        .collect();
    s += &format!(
        "simd level: {} (chosen at run time from {}; EMBER_SIMD=portable|avx2|avx512 forces one)\n",
        ember_tensor::simd::level(),
        levels.join(", ")
    );
    #[cfg(target_arch = "x86_64")]
    {
        let feats: Vec<&str> = [
            ("sse4.2", std::arch::is_x86_feature_detected!("sse4.2")),
            ("avx", std::arch::is_x86_feature_detected!("avx")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
        ]
        .iter()
        .filter(|f| f.1)
        .map(|f| f.0)
        .collect();
        s += &format!("cpu features: {}\n", feats.join(" "));
        let gemm = if std::arch::is_x86_feature_detected!("fma") {
            "fma (matrixmultiply, chosen at run time)"
        } else {
            "sse2/avx (matrixmultiply)"
        };
        s += &format!("gemm kernel: {gemm}\n");
    }
    s += &format!(
        "threads: {} (rayon; set with --threads or RAYON_NUM_THREADS)\n",
        rayon::current_num_threads()
    );
    s += &format!(
        "available parallelism: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    s
}

/// Count and per-class counts of one split.
#[derive(Clone, Debug, Serialize)]
pub struct SplitInfo {
    /// Number of images.
    pub count: usize,
    /// Images per class, in label order.
    pub class_counts: Vec<usize>,
}

/// What `ember dataset info` reports.
#[derive(Clone, Debug, Serialize)]
pub struct DatasetInfo {
    /// The format detected.
    pub format: String,
    /// Image shape `[C, H, W]`.
    pub shape: [usize; 3],
    /// Class names in label order.
    pub classes: Vec<String>,
    /// The training split.
    pub train: SplitInfo,
    /// The test split.
    pub test: SplitInfo,
}

/// Opens a dataset and describes it.
pub fn dataset_info(what: &str) -> Result<DatasetInfo> {
    let s = crate::datasets::open(what)?;
    let split = |d: &ember_data::Dataset| SplitInfo {
        count: d.len(),
        class_counts: d.class_counts(),
    };
    Ok(DatasetInfo {
        format: s.format.clone(),
        shape: s.train.shape(),
        classes: s.train.classes().to_vec(),
        train: split(&s.train),
        test: split(&s.test),
    })
}

/// The dataset description as a text table.
pub fn dataset_info_text(info: &DatasetInfo) -> String {
    let mut s = format!(
        "format {}\nimage shape {:?} (channels, height, width)\ntrain {} images, test {} images\n\n{:<4} {:<24} {:>8} {:>8}\n",
        info.format, info.shape, info.train.count, info.test.count, "#", "class", "train", "test"
    );
    for (i, name) in info.classes.iter().enumerate() {
        let get = |v: &Vec<usize>| v.get(i).copied().unwrap_or(0);
        s += &format!(
            "{i:<4} {name:<24} {:>8} {:>8}\n",
            get(&info.train.class_counts),
            get(&info.test.class_counts)
        );
    }
    s
}
