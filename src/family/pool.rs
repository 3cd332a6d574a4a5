//! The image history pool of Shrivastava et al. 2017: discriminators see a mix of the newest
//! fakes and older ones, which damps oscillation.

use burn::prelude::*;
use rand::Rng;

use crate::model::weights::HostTensor;

/// Up to `capacity` past generated images, each `[1, C, H, W]`, detached from the graph.
#[derive(Debug, Clone)]
pub struct ImagePool {
    capacity: usize,
    images: Vec<Tensor<4>>,
}

impl ImagePool {
    /// An empty pool; capacity 0 makes [`ImagePool::query`] return its input.
    pub fn new(capacity: usize) -> Self {
        ImagePool {
            capacity,
            images: Vec::new(),
        }
    }

    /// Images currently held.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// True when nothing is held yet.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Return a batch for the discriminator in place of `fakes` (`[B, C, H, W]`, detached).
    ///
    /// Until the pool is full each image is stored and returned as is. Then, with probability
    /// one half, an image is swapped with a random stored one, which is returned instead.
    pub fn query(&mut self, fakes: Tensor<4>, rng: &mut impl Rng) -> Tensor<4> {
        if self.capacity == 0 {
            return fakes;
        }
        let batch = fakes.dims()[0];
        let mut out = Vec::with_capacity(batch);
        for i in 0..batch {
            let image = fakes.clone().narrow(0, i, 1);
            if self.images.len() < self.capacity {
                self.images.push(image.clone());
                out.push(image);
            } else if rng.random::<f64>() > 0.5 {
                let slot = rng.random_range(0..self.capacity);
                out.push(std::mem::replace(&mut self.images[slot], image));
            } else {
                out.push(image);
            }
        }
        if batch == 1 {
            out.pop().unwrap()
        } else {
            Tensor::cat(out, 0)
        }
    }

    /// The stored images, copied to the host (for checkpoints).
    pub fn to_host(&self) -> Vec<HostTensor> {
        self.images
            .iter()
            .map(|t| HostTensor::from_tensor(t.clone()))
            .collect()
    }

    /// A pool holding `images` (from [`ImagePool::to_host`]) on `device`.
    pub fn from_host(capacity: usize, images: &[HostTensor], device: &Device) -> Self {
        ImagePool {
            capacity,
            images: images.iter().map(|h| h.to_tensor(device)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn image(v: f32, device: &Device) -> Tensor<4> {
        Tensor::full([1, 1, 2, 2], v, device)
    }

    fn value(t: &Tensor<4>) -> f32 {
        t.clone().into_data().try_to_vec::<f32>().unwrap()[0]
    }

    #[test]
    fn fills_then_swaps_half_the_time() {
        let device = Device::flex();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut pool = ImagePool::new(3);
        for v in 0..3 {
            assert_eq!(
                value(&pool.query(image(v as f32, &device), &mut rng)),
                v as f32
            );
        }
        assert_eq!(pool.len(), 3);
        let mut older = 0;
        for v in 3..203 {
            let got = value(&pool.query(image(v as f32, &device), &mut rng));
            if got != v as f32 {
                older += 1;
                assert!(got < v as f32, "a swapped image comes from the past");
            }
        }
        assert!(
            (70..130).contains(&older),
            "about half are swapped, got {older}/200"
        );
        assert_eq!(pool.len(), 3);
    }

    #[test]
    fn zero_capacity_passes_through_and_host_round_trip() {
        let device = Device::flex();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut off = ImagePool::new(0);
        assert_eq!(value(&off.query(image(7.0, &device), &mut rng)), 7.0);
        assert!(off.is_empty());

        let mut pool = ImagePool::new(2);
        pool.query(
            Tensor::cat(vec![image(1.0, &device), image(2.0, &device)], 0),
            &mut rng,
        );
        let back = ImagePool::from_host(2, &pool.to_host(), &device);
        assert_eq!(back.to_host(), pool.to_host());
        assert_eq!(back.len(), 2);
    }
}
