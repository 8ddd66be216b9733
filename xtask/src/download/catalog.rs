//! The dataset table: where each dataset comes from, which checksums it must match and
//! which files it unpacks to. Also the default data directory rule.
//!
//! # Checksum provenance
//! - CIFAR-10 / CIFAR-100: the MD5s published on the dataset page (Krizhevsky, Toronto).
//!   The archives could not be fetched on the machine where this table was written, so
//!   no SHA-256 is recorded for them (none is invented); the SHA-256 actually seen is
//!   written to the dataset's manifest on first download.
//! - Fashion-MNIST: the MD5s published in Zalando Research's README. The SHA-256s were
//!   computed here from Debian's `dataset-fashion-mnist` copy after restoring the gzip
//!   header fields Debian normalises (original file name and mtime): the rebuilt files
//!   match the published MD5s byte for byte (docs/DATASETS.md has the details and
//!   `tests/download_real.rs` repeats the check). The `content_sha256`s are the SHA-256s
//!   of the uncompressed IDX files, so that re-compressed copies such as Debian's verify.
//! - MNIST: there is no official checksum. The SHA-256s are the ones that widely used
//!   loaders (torchvision, TensorFlow's mirror users, and others) agree on; they were
//!   not computed here because the files cannot be fetched on this machine.

use std::path::{Path, PathBuf};

/// One dataset: its name (also its folder under the data directory), the archives it is
/// made from and the files that must exist once it is unpacked.
#[derive(Clone, Copy, Debug)]
pub struct Dataset<'a> {
    /// Name on the command line and folder name under the data directory.
    pub name: &'a str,
    /// One line for `--help` / `list`.
    pub description: &'a str,
    /// The files to download (or import), each verified before anything is unpacked.
    pub archives: &'a [Archive<'a>],
    /// Paths, relative to the dataset folder, that must exist after unpacking.
    pub files: &'a [&'a str],
}

/// One downloadable file with its mirrors and expected checksums.
#[derive(Clone, Copy, Debug)]
pub struct Archive<'a> {
    /// File name (as published, and as looked for by `--from FOLDER`).
    pub file_name: &'a str,
    /// URLs tried in order; the first that answers is used.
    pub urls: &'a [&'a str],
    /// Expected MD5 of the file (lower-case hex), when one is published.
    pub md5: Option<&'a str>,
    /// Expected SHA-256 of the file (lower-case hex), when one is known.
    pub sha256: Option<&'a str>,
    /// How the file turns into dataset files.
    pub unpack: Unpack<'a>,
}

/// How an archive is unpacked into the dataset folder.
#[derive(Clone, Copy, Debug)]
pub enum Unpack<'a> {
    /// A single gzip-compressed file, decompressed to `output`.
    Gunzip {
        /// Name of the decompressed file inside the dataset folder.
        output: &'a str,
        /// SHA-256 of the decompressed bytes, when known. A copy whose compressed
        /// bytes differ (re-compressed) is accepted when its content matches this.
        content_sha256: Option<&'a str>,
    },
    /// A gzip-compressed tar whose single top-level folder `strip` is removed, so its
    /// files land directly in the dataset folder.
    TarGz {
        /// The top-level folder inside the tar.
        strip: &'a str,
    },
}

impl<'a> Dataset<'a> {
    /// Looks a dataset up by name in [`DATASETS`].
    pub fn find(name: &str) -> Option<&'static Dataset<'static>> {
        DATASETS.iter().find(|d| d.name == name)
    }

    /// The dataset's folder under `data_dir`: `<data_dir>/<name>`.
    pub fn dir_in(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(self.name)
    }
}

/// Environment variable that overrides the data directory.
pub const DATA_DIR_ENV: &str = "EMBER_DATA";

/// The data directory used when `--dir` is not given, and the first place `ember train`
/// looks (`<data_dir>/<dataset name>`): `$EMBER_DATA` when set and not empty, else `data`
/// relative to the current folder (run both commands from the repository root).
pub fn default_data_dir() -> PathBuf {
    match std::env::var_os(DATA_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("data"),
    }
}

// Mirrors. CIFAR: the dataset authors' page. MNIST: PyTorch's and TensorFlow's copies
// first, then the original site (which often refuses automated downloads). Fashion-MNIST:
// the address in Zalando Research's README, then the files in their repository.
macro_rules! kriz {
    ($file:literal) => {
        concat!("https://www.cs.toronto.edu/~kriz/", $file)
    };
}

macro_rules! mnist {
    ($stem:literal, $sha256:literal $(,)?) => {
        Archive {
            file_name: concat!($stem, ".gz"),
            urls: &[
                concat!(
                    "https://ossci-datasets.s3.amazonaws.com/mnist/",
                    $stem,
                    ".gz"
                ),
                concat!(
                    "https://storage.googleapis.com/cvdf-datasets/mnist/",
                    $stem,
                    ".gz"
                ),
                concat!("http://yann.lecun.com/exdb/mnist/", $stem, ".gz"),
            ],
            md5: None, // MNIST publishes no checksum
            sha256: Some($sha256),
            unpack: Unpack::Gunzip {
                output: $stem,
                content_sha256: None,
            },
        }
    };
}

macro_rules! fashion {
    ($stem:literal, $md5:literal, $sha256:literal, $content_sha256:literal $(,)?) => {
        Archive {
            file_name: concat!($stem, ".gz"),
            urls: &[
                concat!("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", $stem, ".gz"),
                concat!(
                    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
                    $stem,
                    ".gz"
                ),
            ],
            md5: Some($md5),
            sha256: Some($sha256),
            unpack: Unpack::Gunzip { output: $stem, content_sha256: Some($content_sha256) },
        }
    };
}

/// Every dataset `cargo xtask download` knows.
pub static DATASETS: &[Dataset<'static>] = &[
    Dataset {
        name: "cifar10",
        description: "CIFAR-10, binary version (data_batch_1..5.bin, test_batch.bin)",
        archives: &[Archive {
            file_name: "cifar-10-binary.tar.gz",
            urls: &[kriz!("cifar-10-binary.tar.gz")],
            md5: Some("c32a1d4ab5d03f1284b67883e8d87530"),
            sha256: None, // not computable here; see the module doc
            unpack: Unpack::TarGz {
                strip: "cifar-10-batches-bin",
            },
        }],
        files: &[
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
            "test_batch.bin",
            "batches.meta.txt",
        ],
    },
    Dataset {
        name: "cifar10-python",
        description: "CIFAR-10, Python pickle version (data_batch_1..5, test_batch)",
        archives: &[Archive {
            file_name: "cifar-10-python.tar.gz",
            urls: &[kriz!("cifar-10-python.tar.gz")],
            md5: Some("c58f30108f718f92721af3b95e74349a"),
            sha256: None, // not computable here; see the module doc
            unpack: Unpack::TarGz {
                strip: "cifar-10-batches-py",
            },
        }],
        files: &[
            "data_batch_1",
            "data_batch_2",
            "data_batch_3",
            "data_batch_4",
            "data_batch_5",
            "test_batch",
            "batches.meta",
        ],
    },
    Dataset {
        name: "cifar100",
        description: "CIFAR-100, binary version (train.bin, test.bin, label names)",
        archives: &[Archive {
            file_name: "cifar-100-binary.tar.gz",
            urls: &[kriz!("cifar-100-binary.tar.gz")],
            md5: Some("03b5dce01913d631647c71ecec9e9cb8"),
            sha256: None, // not computable here; see the module doc
            unpack: Unpack::TarGz {
                strip: "cifar-100-binary",
            },
        }],
        files: &[
            "train.bin",
            "test.bin",
            "fine_label_names.txt",
            "coarse_label_names.txt",
        ],
    },
    Dataset {
        name: "mnist",
        description: "MNIST handwritten digits (IDX files)",
        archives: &[
            mnist!(
                "train-images-idx3-ubyte",
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
            ),
            mnist!(
                "train-labels-idx1-ubyte",
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
            ),
            mnist!(
                "t10k-images-idx3-ubyte",
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
            ),
            mnist!(
                "t10k-labels-idx1-ubyte",
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
            ),
        ],
        files: IDX_FILES,
    },
    Dataset {
        name: "fashion-mnist",
        description: "Fashion-MNIST clothing images (IDX files)",
        archives: &[
            fashion!(
                "train-images-idx3-ubyte",
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            ),
            fashion!(
                "train-labels-idx1-ubyte",
                "25c81989df183df01b3e8a0aad5dffbe",
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            ),
            fashion!(
                "t10k-images-idx3-ubyte",
                "bef4ecab320f06d8554ea6380940ec79",
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            ),
            fashion!(
                "t10k-labels-idx1-ubyte",
                "bb300cfdad3c16e7a12a480ee83cd310",
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            ),
        ],
        files: IDX_FILES,
    },
];

/// The four uncompressed IDX files of MNIST and Fashion-MNIST.
const IDX_FILES: &[&str] = &[
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];
