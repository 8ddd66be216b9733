//! `ember info` and `ember dataset info`: what this machine runs, and what a dataset holds.

use serde::Serialize;

use crate::error::Result;

/// What this machine runs: `ember info`.
#[derive(Clone, Debug, Serialize)]
pub struct MachineInfo {
    /// The Ember version.
    pub version: String,
    /// The SIMD level the kernels run at (chosen at run time, `EMBER_SIMD` forces one).
    pub simd: String,
    /// The SIMD levels this CPU can run.
    pub simd_available: Vec<String>,
    /// The CPU features found at run time (x86-64).
    pub cpu_features: Vec<String>,
    /// The GEMM kernel matrixmultiply picks.
    pub gemm_kernel: String,
    /// Threads of the rayon pool.
    pub threads: usize,
    /// The cores this process may use.
    pub available_parallelism: usize,
}

/// CPU features, kernel paths and threads.
pub fn machine_info() -> MachineInfo {
    #[cfg(target_arch = "x86_64")]
    let (cpu_features, gemm_kernel) = {
        let feats = [
            ("sse4.2", std::arch::is_x86_feature_detected!("sse4.2")),
            ("avx", std::arch::is_x86_feature_detected!("avx")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
        ]
        .iter()
        .filter(|f| f.1)
        .map(|f| f.0.to_string())
        .collect();
        let gemm = if std::arch::is_x86_feature_detected!("fma") {
            "fma (matrixmultiply, chosen at run time)"
        } else {
            "sse2/avx (matrixmultiply)"
        };
        (feats, gemm.to_string())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (cpu_features, gemm_kernel) = (Vec::new(), "matrixmultiply".to_string());
    MachineInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        simd: ember_tensor::simd::level().name().to_string(),
        simd_available: ember_tensor::simd::Level::available()
            .iter()
            .map(|l| l.name().to_string())
            .collect(),
        cpu_features,
        gemm_kernel,
        threads: rayon::current_num_threads(),
        available_parallelism: crate::config::cores(),
    }
}

/// The machine description as text.
pub fn machine_info_text(m: &MachineInfo) -> String {
    format!(
        "ember {}\nsimd level: {} (chosen at run time from {}; EMBER_SIMD=portable|avx2|avx512 \
         forces one)\ncpu features: {}\n\
         gemm kernel: {}\nthreads: {} (rayon; set with --threads or RAYON_NUM_THREADS)\n\
         available parallelism: {}",
        m.version,
        m.simd,
        m.simd_available.join(", "),
        m.cpu_features.join(" "),
        m.gemm_kernel,
        m.threads,
        m.available_parallelism
    )
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
    /// For an image folder: its decoded copy in the cache folder.
    pub cache: Option<CacheInfo>,
}

/// The state of an image folder's cache, as `ember dataset info` reports it.
#[derive(Clone, Debug, Serialize)]
pub struct CacheInfo {
    /// The cache file.
    pub path: String,
    /// Whether it matches the folder's files (and is used instead of decoding them).
    pub valid: bool,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Opens a dataset (image folders resized to `resize` if given) and describes it.
pub fn dataset_info(what: &str, resize: Option<[usize; 2]>) -> Result<DatasetInfo> {
    let options = ember_data::OpenOptions {
        resize,
        ..Default::default()
    };
    let s = crate::datasets::open_with(what, options.clone())?;
    // After opening, which wrote the cache if it could.
    let cache = crate::datasets::cache_state(what, options)?.map(|c| CacheInfo {
        path: c.path.display().to_string(),
        valid: c.valid,
        bytes: c.bytes,
    });
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
        cache,
    })
}

/// The dataset description as a text table.
pub fn dataset_info_text(info: &DatasetInfo) -> String {
    let mut s = format!(
        "format {}\nimage shape {:?} (channels, height, width)\ntrain {} images, test {} images{}\n\n{:<4} {:<24} {:>8} {:>8}\n",
        info.format,
        info.shape,
        info.train.count,
        info.test.count,
        if info.test.count == 0 {
            " (no test part: `ember train` holds out --test-split of the training images)"
        } else {
            ""
        },
        "#",
        "class",
        "train",
        "test"
    );
    for (i, name) in info.classes.iter().enumerate() {
        let get = |v: &Vec<usize>| v.get(i).copied().unwrap_or(0);
        s += &format!(
            "{i:<4} {name:<24} {:>8} {:>8}\n",
            get(&info.train.class_counts),
            get(&info.test.class_counts)
        );
    }
    if let Some(c) = &info.cache {
        let state = if c.valid {
            "up to date"
        } else {
            "not written (the cache folder is not writable?)"
        };
        s += &format!(
            "\ndecoded copy: {} ({:.1} MB, {state}); EMBER_CACHE=DIR moves it, EMBER_CACHE=off turns it off\n",
            c.path,
            c.bytes as f64 / 1e6
        );
    }
    s
}
