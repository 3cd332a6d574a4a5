//! Conversions between 8-bit RGB images and `[batch, 3, H, W]` tensors in [-1, 1].

use burn::prelude::*;
use image::RgbImage;

/// Images of one size as a `[n, 3, H, W]` tensor in [-1, 1].
pub fn images_to_tensor(images: &[RgbImage], device: &Device) -> Tensor<4> {
    let (w, h) = images[0].dimensions();
    let mut data = Vec::with_capacity(images.len() * 3 * (w * h) as usize);
    for img in images {
        assert_eq!(img.dimensions(), (w, h), "images of a batch share one size");
        cyclegan_data::loader::push_chw(img, &mut data);
    }
    Tensor::from_data(
        TensorData::new(data, [images.len(), 3, h as usize, w as usize]),
        device,
    )
}

/// A `[n, 3, H, W]` tensor in [-1, 1] as images (values clamped, rounded).
pub fn tensor_to_images(t: Tensor<4>) -> Vec<RgbImage> {
    let [n, c, h, w] = t.dims();
    assert_eq!(c, 3, "RGB tensors only");
    let v = t
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data");
    let plane = h * w;
    (0..n)
        .map(|i| {
            let base = i * 3 * plane;
            RgbImage::from_fn(w as u32, h as u32, |x, y| {
                let p = y as usize * w + x as usize;
                let px = |ch: usize| {
                    ((v[base + ch * plane + p] + 1.0) * 127.5)
                        .round()
                        .clamp(0.0, 255.0) as u8
                };
                image::Rgb([px(0), px(1), px(2)])
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_exact_for_8_bit_values() {
        let img = RgbImage::from_fn(5, 3, |x, y| {
            image::Rgb([(x * 50) as u8, (y * 100) as u8, 255])
        });
        let t = images_to_tensor(&[img.clone(), img.clone()], &Device::flex());
        assert_eq!(t.dims(), [2, 3, 3, 5]);
        let back = tensor_to_images(t);
        assert_eq!(back, vec![img.clone(), img]);
    }
}
