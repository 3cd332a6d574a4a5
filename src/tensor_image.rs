//! Conversions between 8-bit RGB images and `[batch, 3, H, W]` tensors in [-1, 1], and between
//! RGB and grayscale tensors (`--input-nc 1`, `--output-nc 1`).

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

/// `x` `[n, c, H, W]` (c = 1 or 3) with `channels` channels: grayscale as the luma of ITU-R
/// 601 (`0.299 R + 0.587 G + 0.114 B`, PIL's `convert("L")`, which the reference's grayscale
/// option uses; linear, so the same on [-1, 1] values), or a gray repeated into RGB.
pub fn to_channels(x: Tensor<4>, channels: usize) -> Tensor<4> {
    let [_, c, _, _] = x.dims();
    match (c, channels) {
        (c, wanted) if c == wanted => x,
        (3, 1) => {
            let weight = |i: usize, w: f32| x.clone().narrow(1, i, 1).mul_scalar(w);
            weight(0, 0.299) + weight(1, 0.587) + weight(2, 0.114)
        }
        (1, 3) => x.repeat_dim(1, 3),
        (c, wanted) => panic!("to_channels: {c} -> {wanted} channels"),
    }
}

/// A `[n, 3, H, W]` (or grayscale `[n, 1, H, W]`) tensor in [-1, 1] as images (values
/// clamped, rounded).
pub fn tensor_to_images(t: Tensor<4>) -> Vec<RgbImage> {
    let t = to_channels(t, 3);
    let [n, _, h, w] = t.dims();
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

    /// Gray is PIL's luma, and shows as equal RGB channels.
    #[test]
    fn grayscale_is_the_luma_and_shows_as_gray() {
        let img = RgbImage::from_fn(2, 1, |x, _| match x {
            0 => image::Rgb([255, 0, 0]),
            _ => image::Rgb([0, 0, 255]),
        });
        let gray = to_channels(images_to_tensor(&[img], &Device::flex()), 1);
        assert_eq!(gray.dims(), [1, 1, 1, 2]);
        let back = tensor_to_images(gray).remove(0);
        // 255 * 0.299 = 76.2, 255 * 0.114 = 29.1
        assert_eq!(back.get_pixel(0, 0).0, [76, 76, 76]);
        assert_eq!(back.get_pixel(1, 0).0, [29, 29, 29]);
    }
}
