//! What an H.264 sequence parameter set says about the stream, read before decoding so that a
//! stream the built-in decoder (OpenH264: 8-bit 4:2:0 progressive) cannot handle is refused
//! with its name (High 10, High 4:4:4, interlaced, ...) instead of an opaque decoder failure.

/// The fields of a sequence parameter set that decide whether OpenH264 can decode the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpsFacts {
    pub profile_idc: u8,
    /// 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u32,
    pub bit_depth_luma: u32,
    pub bit_depth_chroma: u32,
    /// False where pictures may be coded as fields (interlaced, PAFF or MBAFF).
    pub frame_mbs_only: bool,
}

/// Reads bits of a NAL unit's payload, emulation-prevention bytes already removed.
struct Bits<'a> {
    d: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.d.get(self.pos / 8)?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(b))
    }
    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0u32, |v, _| Some((v << 1) | self.bit()?))
    }
    /// Unsigned Exp-Golomb code.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.bits(zeros)?)
    }
    /// Signed Exp-Golomb code.
    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// Profiles whose SPS carries chroma format and bit depth (the High family and its kin).
fn has_chroma_info(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

/// Parse an SPS NAL unit (with its one-byte header). None where it is cut short or malformed.
pub(crate) fn parse(nal: &[u8]) -> Option<SpsFacts> {
    if nal.first()? & 0x1f != 7 {
        return None;
    }
    // Remove emulation prevention: 00 00 03 -> 00 00.
    let mut rbsp = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in &nal[1..] {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        rbsp.push(b);
    }
    let mut r = Bits { d: &rbsp, pos: 0 };
    let profile_idc = r.bits(8)? as u8;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let (mut chroma_format_idc, mut depth_luma, mut depth_chroma) = (1, 8, 8);
    if has_chroma_info(profile_idc) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            r.bit()?; // separate_colour_plane_flag
        }
        depth_luma = r.ue()?.checked_add(8)?;
        depth_chroma = r.ue()?.checked_add(8)?;
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? == 1 {
            // Scaling lists: skipped, they only have to be walked over.
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i64, 8i64);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + r.se()? + 256) % 256;
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bit()?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    r.ue()?; // pic_width_in_mbs_minus1
    r.ue()?; // pic_height_in_map_units_minus1
    let frame_mbs_only = r.bit()? == 1;
    Some(SpsFacts {
        profile_idc,
        chroma_format_idc,
        bit_depth_luma: depth_luma,
        bit_depth_chroma: depth_chroma,
        frame_mbs_only,
    })
}

/// The profile's name, as players and `ffprobe` print it.
pub(crate) fn profile_name(profile_idc: u8) -> String {
    match profile_idc {
        66 => "Baseline".into(),
        77 => "Main".into(),
        88 => "Extended".into(),
        100 => "High".into(),
        110 => "High 10".into(),
        122 => "High 4:2:2".into(),
        244 => "High 4:4:4 Predictive".into(),
        44 => "CAVLC 4:4:4 Intra".into(),
        83 | 86 => "Scalable (SVC)".into(),
        118 | 128 => "Multiview (MVC)".into(),
        other => format!("profile {other}"),
    }
}

/// Why OpenH264 cannot decode a stream with this SPS, in words; None where it can.
pub(crate) fn unsupported_reason(f: &SpsFacts) -> Option<String> {
    let mut why = Vec::new();
    if f.bit_depth_luma != 8 || f.bit_depth_chroma != 8 {
        let depth = f.bit_depth_luma.max(f.bit_depth_chroma);
        why.push(format!("{depth}-bit samples"));
    }
    match f.chroma_format_idc {
        1 => {}
        0 => why.push("monochrome (4:0:0) pictures".into()),
        2 => why.push("4:2:2 chroma".into()),
        _ => why.push("4:4:4 chroma".into()),
    }
    if !f.frame_mbs_only {
        why.push("interlaced coding (fields)".into());
    }
    if why.is_empty() && !matches!(f.profile_idc, 66 | 77 | 88 | 100) {
        why.push("a profile the built-in decoder does not implement".into());
    }
    (!why.is_empty()).then(|| {
        format!(
            "H.264 {} profile with {}",
            profile_name(f.profile_idc),
            why.join(" and ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bits written MSB first into bytes, for hand-made parameter sets.
    struct Writer(Vec<bool>);
    impl Writer {
        fn bits(&mut self, v: u32, n: u32) {
            for i in (0..n).rev() {
                self.0.push((v >> i) & 1 == 1);
            }
        }
        fn ue(&mut self, v: u32) {
            let x = v + 1;
            let n = 32 - x.leading_zeros();
            self.bits(0, n - 1);
            self.bits(x, n);
        }
        fn bytes(mut self) -> Vec<u8> {
            self.0.push(true); // rbsp stop bit
            while !self.0.len().is_multiple_of(8) {
                self.0.push(false);
            }
            self.0
                .chunks(8)
                .map(|c| c.iter().fold(0u8, |a, &b| (a << 1) | u8::from(b)))
                .collect()
        }
    }

    fn sps(profile: u32, chroma: u32, depth: u32, frame_mbs_only: bool) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        w.bits(0x67, 8);
        w.bits(profile, 8);
        w.bits(0, 8);
        w.bits(30, 8);
        w.ue(0);
        if profile >= 100 {
            w.ue(chroma);
            if chroma == 3 {
                w.bits(0, 1);
            }
            w.ue(depth - 8);
            w.ue(depth - 8);
            w.bits(0, 2);
        }
        w.ue(0); // log2_max_frame_num_minus4
        w.ue(0); // poc type 0
        w.ue(2);
        w.ue(1); // refs
        w.bits(0, 1);
        w.ue(3);
        w.ue(2);
        w.bits(u32::from(frame_mbs_only), 1);
        w.bytes()
    }

    #[test]
    fn names_what_openh264_cannot_decode() {
        let ok = parse(&sps(100, 1, 8, true)).unwrap();
        assert_eq!(unsupported_reason(&ok), None);
        let base = parse(&sps(66, 1, 8, true)).unwrap();
        assert_eq!(unsupported_reason(&base), None);

        let hi10 = unsupported_reason(&parse(&sps(110, 1, 10, true)).unwrap()).unwrap();
        assert!(
            hi10.contains("High 10") && hi10.contains("10-bit"),
            "{hi10}"
        );
        let hi444 = unsupported_reason(&parse(&sps(244, 3, 8, true)).unwrap()).unwrap();
        assert!(
            hi444.contains("High 4:4:4") && hi444.contains("4:4:4 chroma"),
            "{hi444}"
        );
        let fields = unsupported_reason(&parse(&sps(100, 1, 8, false)).unwrap()).unwrap();
        assert!(fields.contains("interlaced"), "{fields}");
    }

    #[test]
    fn cut_short_or_not_an_sps_is_none() {
        let full = sps(100, 1, 8, true);
        assert_eq!(parse(&full[..3]), None);
        assert_eq!(parse(&[0x68, 0xff]), None);
        assert_eq!(parse(&[]), None);
    }
}
