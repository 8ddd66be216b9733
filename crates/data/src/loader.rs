//! The loader: shuffled, augmented, normalised NCHW f32 batches, built in parallel and one
//! batch ahead of the consumer.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use ember_tensor::{Rng, Tensor};
use rayon::prelude::*;

use crate::transform::augment_image;
use crate::{Augment, DataError, Dataset, Normalize};

/// How a [`Loader`] batches, shuffles and transforms.
#[derive(Clone, Debug, PartialEq)]
pub struct LoaderConfig {
    /// Images per batch (> 0).
    pub batch_size: usize,
    /// Reshuffle every epoch (from `seed` and the epoch number).
    pub shuffle: bool,
    /// Drop the last batch of an epoch if it is smaller than `batch_size`.
    pub drop_last: bool,
    /// The seed of the shuffles and the augmentation.
    pub seed: u64,
    /// Pixel normalisation.
    pub normalize: Normalize,
    /// Augmentation (none by default; use none for evaluation).
    pub augment: Augment,
    /// `Some((rank, world_size))`: this loader yields only rank's share of every epoch's
    /// permutation (positions rank, rank + world_size, …), the same number of images on
    /// every rank (up to world_size - 1 images of an epoch are left out).
    pub shard: Option<(usize, usize)>,
    /// Build batches on a private rayon pool of this many threads instead of the global pool.
    /// The batches are the same whatever the number of threads.
    pub threads: Option<usize>,
    /// Prepare the next batch on a background thread while the caller works (the default);
    /// false builds each batch on the caller's thread when asked. Same batches either way.
    pub background: bool,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            batch_size: 64,
            shuffle: true,
            drop_last: false,
            seed: 0,
            normalize: Normalize::default(),
            augment: Augment::none(),
            shard: None,
            threads: None,
            background: true,
        }
    }
}

/// One mini-batch.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The images, shape [B, C, H, W].
    pub images: Tensor,
    /// The B labels.
    pub labels: Vec<usize>,
    /// The B dataset indices the images came from.
    pub indices: Vec<usize>,
}

struct Inner {
    dataset: Arc<Dataset>,
    config: LoaderConfig,
    tables: Vec<[f32; 256]>,
    pool: Option<rayon::ThreadPool>,
}

/// Yields the batches of each epoch: the order is a seeded function of (seed, epoch), each
/// image's augmentation a seeded function of (seed, epoch, dataset index), so a run resumed
/// at epoch e sees the same batches, whatever the thread count.
///
/// ```
/// use std::sync::Arc;
/// use ember_data::{Augment, Loader, LoaderConfig, Normalize};
/// let splits = ember_data::sample()?;
/// let normalize = Normalize::from_dataset(&splits.train);
/// let config = LoaderConfig { batch_size: 128, normalize, augment: Augment::crop_flip(), ..Default::default() };
/// let loader = Loader::new(Arc::new(splits.train), config)?;
/// for batch in loader.epoch(0).take(2) {
///     assert_eq!(batch.images.shape().dims(), &[128, 1, 28, 28]);
///     assert_eq!(batch.labels.len(), 128);
/// }
/// # Ok::<(), ember_data::DataError>(())
/// ```
pub struct Loader {
    inner: Arc<Inner>,
}

impl Loader {
    /// A loader over `dataset`. Fails on a zero batch size, a shard rank not below its world
    /// size, a normalisation that does not fit the image channels, or a pool that cannot start.
    pub fn new(dataset: Arc<Dataset>, config: LoaderConfig) -> Result<Loader, DataError> {
        let bad = |what: &str, found: String| DataError::new("loader config", what, found);
        if config.batch_size == 0 {
            return Err(bad("a batch size above 0", "0".into()));
        }
        if let Some((rank, world)) = config.shard
            && rank >= world
        {
            return Err(bad(
                "a shard rank below the world size",
                format!("rank {rank} of {world}"),
            ));
        }
        let channels = dataset.shape()[0];
        config.normalize.check(channels)?;
        let pool = match config.threads {
            Some(n) => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n.max(1))
                    .build()
                    .map_err(|e| bad("a thread pool", e.to_string()))?,
            ),
            None => None,
        };
        let tables = config.normalize.tables(channels);
        Ok(Loader {
            inner: Arc::new(Inner {
                dataset,
                config,
                tables,
                pool,
            }),
        })
    }

    /// The dataset.
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.inner.dataset
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.inner.config
    }

    /// The number of images this loader yields per epoch (before `drop_last`).
    pub fn len(&self) -> usize {
        let n = self.inner.dataset.len();
        match self.inner.config.shard {
            Some((_, world)) => n / world,
            None => n,
        }
    }

    /// True if an epoch yields no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of batches per epoch.
    pub fn num_batches(&self) -> usize {
        let (n, b) = (self.len(), self.inner.config.batch_size);
        if self.inner.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The dataset indices of `epoch`, in the order they are batched (this rank's share).
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        self.inner.order(epoch)
    }

    /// The batches of `epoch`. A background thread builds the next batch while the caller
    /// works on the current one; dropping the iterator stops it.
    pub fn epoch(&self, epoch: u64) -> Epoch {
        let remaining = self.num_batches();
        let (tx, rx) = sync_channel(0);
        let inline = || Source::Inline {
            inner: Arc::clone(&self.inner),
            order: self.order(epoch),
            epoch,
            next: 0,
        };
        if !self.inner.config.background {
            return Epoch {
                source: inline(),
                remaining,
            };
        }
        let inner = Arc::clone(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("ember-loader".into())
            .spawn(move || {
                let order = inner.order(epoch);
                for chunk in order.chunks(inner.config.batch_size).take(remaining) {
                    if tx.send(inner.batch(epoch, chunk)).is_err() {
                        break; // the consumer went away
                    }
                }
            });
        let source = match spawned {
            Ok(handle) => Source::Background {
                rx: Some(rx),
                handle: Some(handle),
            },
            // No thread to be had: build each batch on the caller's thread when asked.
            Err(_) => Source::Inline {
                inner: Arc::clone(&self.inner),
                order: self.order(epoch),
                epoch,
                next: 0,
            },
        };
        Epoch { source, remaining }
    }

    /// Builds the batch of the given dataset indices as `epoch` would (augmentation included).
    pub fn batch(&self, epoch: u64, indices: &[usize]) -> Batch {
        self.inner.batch(epoch, indices)
    }
}

/// The stream of [`Augment::alternate_flip`]'s per-image starting sides.
const ALTERNATE_FLIP_STREAM: u64 = 0xf11b_f11b_f11b_f11b;

impl Inner {
    fn epoch_rng(&self, epoch: u64) -> Rng {
        Rng::new(self.config.seed).fork(epoch)
    }

    fn order(&self, epoch: u64) -> Vec<usize> {
        let mut perm: Vec<usize> = (0..self.dataset.len()).collect();
        if self.config.shuffle {
            self.epoch_rng(epoch).fork(0).shuffle(&mut perm);
        }
        match self.config.shard {
            Some((rank, world)) => {
                let per = perm.len() / world;
                perm.into_iter()
                    .skip(rank)
                    .step_by(world)
                    .take(per)
                    .collect()
            }
            None => perm,
        }
    }

    fn batch(&self, epoch: u64, indices: &[usize]) -> Batch {
        let ds = &self.dataset;
        let shape = ds.shape();
        let item = ds.image_len();
        let mut images = Tensor::zeros([indices.len(), shape[0], shape[1], shape[2]]);
        let aug = self.config.augment;
        let aug_rng = self.epoch_rng(epoch).fork(1);
        // Alternating flips: a seeded start per image (not per epoch), then every other epoch.
        let flip_start = Rng::new(self.config.seed).fork(ALTERNATE_FLIP_STREAM);
        let tables = &self.tables;
        let fill = |out: &mut [f32]| {
            out.par_chunks_mut(item)
                .zip(indices.par_iter())
                .for_each(|(o, &i)| {
                    let mut rng = aug_rng.fork(i as u64);
                    let flip = (aug.hflip && aug.alternate_flip).then(|| {
                        (flip_start.fork(i as u64).next_u64() & 1 == 1) ^ (epoch % 2 == 1)
                    });
                    augment_image(ds.image(i), shape, &aug, tables, &mut rng, flip, o);
                })
        };
        match &self.pool {
            Some(p) => p.install(|| fill(images.data_mut())),
            None => fill(images.data_mut()),
        }
        Batch {
            images,
            labels: indices.iter().map(|&i| ds.label(i)).collect(),
            indices: indices.to_vec(),
        }
    }
}

/// The batches of one epoch, in order; see [`Loader::epoch`].
pub struct Epoch {
    source: Source,
    remaining: usize,
}

enum Source {
    Background {
        rx: Option<Receiver<Batch>>,
        handle: Option<JoinHandle<()>>,
    },
    Inline {
        inner: Arc<Inner>,
        order: Vec<usize>,
        epoch: u64,
        next: usize,
    },
}

impl Iterator for Epoch {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.remaining == 0 {
            return None;
        }
        let batch = match &mut self.source {
            Source::Inline {
                inner,
                order,
                epoch,
                next,
            } => {
                let b = inner.config.batch_size;
                let end = (*next + b).min(order.len());
                let batch = inner.batch(*epoch, &order[*next..end]);
                *next = end;
                batch
            }
            Source::Background { rx, handle } => match rx.as_ref()?.recv() {
                Ok(batch) => batch,
                Err(_) => {
                    self.remaining = 0;
                    // The producer stopped early: only a panic does that; pass it on.
                    if let Some(Err(p)) = handle.take().map(JoinHandle::join) {
                        std::panic::resume_unwind(p);
                    }
                    return None;
                }
            },
        };
        self.remaining -= 1;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Epoch {}

impl Drop for Epoch {
    fn drop(&mut self) {
        if let Source::Background { rx, handle } = &mut self.source {
            *rx = None; // unblocks the producer
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
    }
}
