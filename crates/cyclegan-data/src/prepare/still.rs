//! Reading one still image: decode, convert or drop non-RGB colours, crop bars if asked, stage.

use super::error::PrepareError;
use super::options::{CropBars, NonRgb};
use super::staged::{Origin, ReadJob, ReadOut, Stager, reason};
use crate::bars;
use crate::imageio;
use crate::sources::Skip;

/// Read one image file; an unusable file is listed in `skipped`, never an error.
pub(super) fn read_image(stager: &Stager, job: &ReadJob) -> Result<ReadOut, PrepareError> {
    let opts = stager.opts;
    let path = &job.file.path;
    let mut out = ReadOut::default();
    let (img, mode) = match imageio::decode_with_mode(path) {
        Ok(x) => x,
        Err(e) => {
            out.skipped.push(Skip {
                path: path.clone(),
                reason: reason(path, &e),
            });
            return Ok(out);
        }
    };
    if !mode.is_plain_rgb() && opts.non_rgb == NonRgb::Drop {
        out.dropped_non_rgb.push(Skip {
            path: path.clone(),
            reason: format!("{mode} (--non-rgb drop)"),
        });
        return Ok(out);
    }
    let original_size = [img.width(), img.height()];
    let rgb = imageio::to_rgb_on(img, opts.background);
    let crop = if opts.crop_bars == CropBars::All {
        let d = bars::detect_bars(&rgb, &opts.bar_params);
        (!d.crop.is_full(rgb.width(), rgb.height())).then_some(d.crop)
    } else {
        None
    };
    let origin = Origin {
        source: path.clone(),
        frame: None,
        original_size,
        mode,
    };
    let picture = stager.stage(origin, &rgb, crop, &format!("{:06}", job.id))?;
    out.pictures.push(picture);
    Ok(out)
}
