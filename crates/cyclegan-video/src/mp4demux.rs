//! A small MP4/MOV demuxer: finds the first video track and lists its samples.
//!
//! Written here rather than taken from the `mp4` crate's reader because that reader loops forever
//! on a zero-sized child box, unwraps on inconsistent tables and looks every sample up in O(n).
//! Every read here is bounds-checked; a damaged file gives an error, never a panic or a hang.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::VideoError;
use crate::orient::Orientation;

/// One coded picture in the file, in decode order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub offset: u64,
    pub size: u32,
    /// Composition (presentation) time in track ticks.
    pub cts: i64,
    /// Decoding time to the next sample, in track ticks (the `stts` delta).
    pub duration: u32,
}

/// The first video track of a file.
#[derive(Debug)]
pub(crate) struct VideoTrack {
    /// Four-character code of the sample entry (`avc1`, `hvc1`, ...).
    pub codec: [u8; 4],
    pub width: u32,
    pub height: u32,
    pub timescale: u32,
    /// Bytes of each NAL unit's length prefix (1, 2 or 4).
    pub nal_length_size: usize,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
    pub samples: Vec<Sample>,
    /// End of the last sample's display in ticks (for the last frame's duration).
    pub end_cts: i64,
    /// How the track header says to turn the picture for display.
    pub orientation: Orientation,
    /// Where the first media edit starts the track on the movie timeline.
    pub edit: Option<Edit>,
    /// Ticks per second of the movie timeline (`mvhd`), in which edits are measured.
    pub movie_timescale: u32,
}

/// The first edit of a track that shows media (`elst`), after any empty edits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Edit {
    /// Movie ticks of empty edits before it (time before the track starts).
    pub empty: u64,
    /// The media time it starts at, in track ticks.
    pub media_time: i64,
}

/// An audio track, as much of it as copying it into another MP4 needs.
#[derive(Debug)]
pub(crate) struct AudioTrack {
    /// Four-character code of the sample entry (`mp4a`, `ac-3`, `Opus`, ...).
    pub codec: [u8; 4],
    /// The whole sample entry box (header included), copied as it is.
    pub entry: Vec<u8>,
    pub timescale: u32,
    /// ISO-639-2 language, packed as in `mdhd`.
    pub language: u16,
    pub samples: Vec<Sample>,
    pub edit: Option<Edit>,
}

/// Largest `moov` box read into memory (its tables for hours of video take a few MB).
const MAX_MOOV: u64 = 512 << 20;

type R<T> = Result<T, String>;

/// A cursor over a box body that fails instead of panicking.
struct Cur<'a> {
    d: &'a [u8],
    p: usize,
}

impl<'a> Cur<'a> {
    fn new(d: &'a [u8]) -> Self {
        Self { d, p: 0 }
    }
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self
            .p
            .checked_add(n)
            .filter(|&e| e <= self.d.len())
            .ok_or("box shorter than its fields")?;
        let s = &self.d[self.p..end];
        self.p = end;
        Ok(s)
    }
    fn skip(&mut self, n: usize) -> R<()> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> R<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> R<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> R<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn remaining(&self) -> usize {
        self.d.len() - self.p
    }
    /// An entry count, refused when the entries could not fit in what is left of the box.
    fn count(&mut self, entry_size: usize) -> R<usize> {
        let n = self.u32()? as usize;
        if n.checked_mul(entry_size)
            .is_none_or(|b| b > self.remaining())
        {
            return Err("table longer than its box".into());
        }
        Ok(n)
    }
}

/// Child boxes of a container body: `(type, body)`.
pub(crate) fn children(d: &[u8]) -> R<Vec<([u8; 4], &[u8])>> {
    let mut out = Vec::new();
    let mut p = 0usize;
    while d.len() - p >= 8 {
        let size32 = u32::from_be_bytes([d[p], d[p + 1], d[p + 2], d[p + 3]]) as u64;
        let kind = [d[p + 4], d[p + 5], d[p + 6], d[p + 7]];
        let (header, size) = match size32 {
            0 => (8u64, (d.len() - p) as u64),
            1 => {
                if d.len() - p < 16 {
                    return Err("box header cut short".into());
                }
                let mut a = [0u8; 8];
                a.copy_from_slice(&d[p + 8..p + 16]);
                (16, u64::from_be_bytes(a))
            }
            s => (8, s),
        };
        if size < header || size > (d.len() - p) as u64 {
            return Err(format!(
                "box '{}' has an impossible size",
                String::from_utf8_lossy(&kind)
            ));
        }
        out.push((kind, &d[p + header as usize..p + size as usize]));
        p += size as usize;
    }
    Ok(out)
}

fn child<'a>(d: &'a [u8], kind: &[u8; 4]) -> R<Option<&'a [u8]>> {
    Ok(children(d)?
        .into_iter()
        .find(|(k, _)| k == kind)
        .map(|(_, b)| b))
}

fn need<'a>(d: &'a [u8], kind: &[u8; 4]) -> R<&'a [u8]> {
    child(d, kind)?.ok_or_else(|| format!("missing '{}' box", String::from_utf8_lossy(kind)))
}

/// Outcome of reading the file's structure.
pub(crate) enum Probe {
    Video(VideoTrack),
    /// A readable MP4 whose video is in a codec this build cannot decode.
    UnsupportedCodec(String),
}

/// Read the top-level boxes and the first video track's sample table.
pub(crate) fn read(path: &Path, file: &mut File) -> Result<Probe, VideoError> {
    let moov = read_moov(path, file)?;
    let file_len = file.metadata().map_err(|e| VideoError::io(path, e))?.len();
    parse_moov(&moov.body, file_len).map_err(|why| VideoError::corrupt(path, why))
}

/// A file's `moov` box: where it is and what it holds.
pub(crate) struct Moov {
    /// Byte position of the box (its header).
    pub pos: u64,
    /// Byte position just after it.
    pub end: u64,
    /// Its body, without the header.
    pub body: Vec<u8>,
}

/// The file's `moov` box, checking the top-level structure on the way.
pub(crate) fn read_moov(path: &Path, file: &mut File) -> Result<Moov, VideoError> {
    let corrupt = |why: String| VideoError::corrupt(path, why);
    let file_len = file.metadata().map_err(|e| VideoError::io(path, e))?.len();
    // Walk the top-level boxes by seeking; only `moov` is read into memory.
    let mut pos = 0u64;
    let mut moov = None;
    let mut saw_mdat = false;
    while pos + 8 <= file_len {
        file.seek(SeekFrom::Start(pos))
            .map_err(|e| VideoError::io(path, e))?;
        let mut h = [0u8; 16];
        file.read_exact(&mut h[..8])
            .map_err(|e| VideoError::io(path, e))?;
        let size32 = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as u64;
        let kind = [h[4], h[5], h[6], h[7]];
        let (header, size) = match size32 {
            0 => (8, file_len - pos),
            1 => {
                if pos + 16 > file_len {
                    return Err(corrupt("truncated box header".into()));
                }
                file.read_exact(&mut h[8..16])
                    .map_err(|e| VideoError::io(path, e))?;
                let mut a = [0u8; 8];
                a.copy_from_slice(&h[8..16]);
                (16, u64::from_be_bytes(a))
            }
            s => (8, s),
        };
        if size < header {
            return Err(corrupt(format!(
                "box '{}' at byte {pos} has an impossible size",
                String::from_utf8_lossy(&kind)
            )));
        }
        if pos + size > file_len {
            // A cut-off `mdat` at the end is how a truncated recording looks.
            let what = if &kind == b"mdat" {
                "the media data is cut off (truncated file)"
            } else {
                "a box runs past the end of the file (truncated file)"
            };
            if moov.is_none() || &kind != b"mdat" {
                return Err(corrupt(what.into()));
            }
        }
        match &kind {
            b"moov" => {
                if size > MAX_MOOV || pos + size > file_len {
                    return Err(corrupt("the 'moov' box is too large or cut off".into()));
                }
                let mut buf = vec![0u8; (size - header) as usize];
                file.read_exact(&mut buf)
                    .map_err(|e| VideoError::io(path, e))?;
                moov = Some(Moov {
                    pos,
                    end: pos + size,
                    body: buf,
                });
            }
            b"mdat" => saw_mdat = true,
            b"moof" => return Err(VideoError::unsupported(path, "fragmented MP4")),
            _ => {}
        }
        pos = pos.saturating_add(size);
    }
    let Some(moov) = moov else {
        let why = if saw_mdat {
            "no 'moov' box: the file is truncated or was not finished (recording interrupted?)"
        } else {
            "no 'moov' box: not an MP4 file"
        };
        return Err(corrupt(why.into()));
    };
    Ok(moov)
}

fn parse_moov(moov: &[u8], file_len: u64) -> R<Probe> {
    let Some(trak) = tracks(moov, b"vide")?.into_iter().next() else {
        return Err("no video track".into());
    };
    // Only edits need the movie clock; a file without one still plays.
    parse_video_trak(trak, movie_timescale(moov).unwrap_or(1000), file_len)
}

/// The `trak` boxes whose handler is `handler` (`vide`, `soun`), in file order.
fn tracks<'a>(moov: &'a [u8], handler: &[u8; 4]) -> R<Vec<&'a [u8]>> {
    let mut out = Vec::new();
    for (kind, trak) in children(moov)? {
        if &kind != b"trak" {
            continue;
        }
        // A track without a readable handler is no track of ours (and not worth failing on).
        let hdlr = child(trak, b"mdia")
            .ok()
            .flatten()
            .and_then(|m| child(m, b"hdlr").ok().flatten());
        if hdlr.and_then(|h| h.get(8..12)) == Some(handler.as_slice()) {
            out.push(trak);
        }
    }
    Ok(out)
}

/// Ticks per second of the movie timeline (`mvhd`).
pub(crate) fn movie_timescale(moov: &[u8]) -> R<u32> {
    let mut c = Cur::new(need(moov, b"mvhd")?);
    let version = c.u8()?;
    c.skip(3)?;
    c.skip(if version == 1 { 16 } else { 8 })?;
    match c.u32()? {
        0 => Err("movie timescale is 0".into()),
        ts => Ok(ts),
    }
}

/// Timescale and packed language of a track (`mdhd`).
fn media_header(mdia: &[u8]) -> R<(u32, u16)> {
    let mut c = Cur::new(need(mdia, b"mdhd")?);
    let version = c.u8()?;
    c.skip(3)?;
    c.skip(if version == 1 { 16 } else { 8 })?;
    let timescale = c.u32()?;
    if timescale == 0 {
        return Err("track timescale is 0".into());
    }
    c.skip(if version == 1 { 8 } else { 4 })?;
    Ok((timescale, c.u16()?))
}

/// The display orientation in the track header's matrix; upright where it says nothing usable.
fn orientation(trak: &[u8]) -> R<Orientation> {
    let Some(tkhd) = child(trak, b"tkhd")? else {
        return Ok(Orientation::IDENTITY);
    };
    let mut c = Cur::new(tkhd);
    let version = c.u8()?;
    c.skip(3)?;
    // Times, track id, reserved, duration; then reserved, layer, group, volume, reserved.
    c.skip(if version == 1 { 32 } else { 20 })?;
    c.skip(16)?;
    let mut fixed = || c.u32().map(|v| f64::from(v as i32) / 65536.0);
    let (a, b, _u) = (fixed()?, fixed()?, fixed()?);
    let (cc, d) = (fixed()?, fixed()?);
    Ok(Orientation::from_matrix(a, b, cc, d).unwrap_or(Orientation::IDENTITY))
}

/// The first edit that shows media, after any empty ones; None without an edit list.
fn first_edit(trak: &[u8]) -> R<Option<Edit>> {
    let Some(elst) = child(trak, b"edts")?
        .map(|e| child(e, b"elst"))
        .transpose()?
    else {
        return Ok(None);
    };
    let Some(elst) = elst else {
        return Ok(None);
    };
    let mut c = Cur::new(elst);
    let version = c.u8()?;
    c.skip(3)?;
    let k = c.count(if version == 1 { 20 } else { 12 })?;
    let mut empty = 0u64;
    for _ in 0..k {
        let (duration, media_time) = if version == 1 {
            (c.u64()?, c.u64()? as i64)
        } else {
            (u64::from(c.u32()?), i64::from(c.u32()? as i32))
        };
        c.skip(4)?; // rate
        if media_time < 0 {
            empty = empty.saturating_add(duration);
        } else {
            return Ok(Some(Edit { empty, media_time }));
        }
    }
    Ok(None)
}

/// The first sample description entry: its code, its body, and the whole box.
fn first_entry(stbl: &[u8]) -> R<([u8; 4], &[u8], &[u8])> {
    let mut c = Cur::new(need(stbl, b"stsd")?);
    c.skip(4)?;
    if c.u32()? == 0 {
        return Err("empty sample description".into());
    }
    let list = &c.d[c.p..];
    let (codec, body) = children(list)?
        .into_iter()
        .next()
        .ok_or("empty sample description")?;
    // The body is a sub-slice of `list`, which the box starts.
    let end = (body.as_ptr() as usize - list.as_ptr() as usize) + body.len();
    Ok((codec, body, &list[..end]))
}

fn parse_video_trak(trak: &[u8], movie_timescale: u32, file_len: u64) -> R<Probe> {
    let mdia = need(trak, b"mdia")?;
    let (timescale, _) = media_header(mdia)?;
    let stbl = need(need(mdia, b"minf")?, b"stbl")?;

    // Sample description: the first entry decides the codec.
    let (codec, entry, _) = first_entry(stbl)?;
    if !matches!(&codec, b"avc1" | b"avc3") {
        let name = match &codec {
            b"hvc1" | b"hev1" => "H.265/HEVC".to_string(),
            b"av01" => "AV1".to_string(),
            b"vp09" => "VP9".to_string(),
            b"mp4v" => "MPEG-4 Part 2".to_string(),
            b"jpeg" | b"mjpa" => "Motion JPEG".to_string(),
            other => format!("'{}'", String::from_utf8_lossy(other)),
        };
        return Ok(Probe::UnsupportedCodec(format!(
            "{name} video; only H.264 is decoded without FFmpeg"
        )));
    }
    let mut c = Cur::new(entry);
    c.skip(24)?; // reserved, data reference index, pre-defined
    let width = u32::from(c.u16()?);
    let height = u32::from(c.u16()?);
    c.skip(50)?; // resolution, frame count, compressor name, depth, pre-defined
    let avcc = child(&c.d[c.p..], b"avcC")?.ok_or("H.264 track without 'avcC' configuration")?;
    let mut a = Cur::new(avcc);
    a.skip(4)?;
    let nal_length_size = usize::from(a.u8()? & 3) + 1;
    if nal_length_size == 3 {
        return Err("invalid NAL length size 3".into());
    }
    let mut sps = Vec::new();
    for _ in 0..(a.u8()? & 0x1f) {
        let n = usize::from(a.u16()?);
        sps.push(a.take(n)?.to_vec());
    }
    let mut pps = Vec::new();
    for _ in 0..a.u8()? {
        let n = usize::from(a.u16()?);
        pps.push(a.take(n)?.to_vec());
    }
    let samples = sample_table(stbl, file_len)?;
    let end_cts = samples
        .iter()
        .map(|s| s.cts)
        .max()
        .unwrap_or(0)
        .saturating_add(samples.last().map_or(0, |s| i64::from(s.duration)));
    Ok(Probe::Video(VideoTrack {
        codec,
        width,
        height,
        timescale,
        nal_length_size,
        sps,
        pps,
        samples,
        end_cts,
        // Optional boxes: a damaged one is ignored rather than failing the whole file.
        orientation: orientation(trak).unwrap_or(Orientation::IDENTITY),
        edit: first_edit(trak).unwrap_or(None),
        movie_timescale,
    }))
}

/// The audio tracks of a movie (`soun` handler), with their samples.
pub(crate) fn audio_tracks(moov: &[u8], file_len: u64) -> R<Vec<AudioTrack>> {
    let mut out = Vec::new();
    for trak in tracks(moov, b"soun")? {
        let mdia = need(trak, b"mdia")?;
        let (timescale, language) = media_header(mdia)?;
        let stbl = need(need(mdia, b"minf")?, b"stbl")?;
        let (codec, _, entry) = first_entry(stbl)?;
        out.push(AudioTrack {
            codec,
            entry: entry.to_vec(),
            timescale,
            language,
            samples: sample_table(stbl, file_len)?,
            edit: first_edit(trak).unwrap_or(None),
        });
    }
    Ok(out)
}

/// Every sample of a track in decode order: where it is, its size, its presentation time and
/// its duration, from the sample tables.
fn sample_table(stbl: &[u8], file_len: u64) -> R<Vec<Sample>> {
    // Sample sizes.
    let mut sizes: Vec<u32> = Vec::new();
    let mut c = Cur::new(need(stbl, b"stsz")?);
    c.skip(4)?;
    let fixed = c.u32()?;
    let n = if fixed == 0 {
        let n = c.count(4)?;
        sizes.reserve(n);
        for _ in 0..n {
            sizes.push(c.u32()?);
        }
        n
    } else {
        let n = c.u32()? as usize;
        if (n as u64).saturating_mul(u64::from(fixed)) > file_len {
            return Err("sample sizes add up to more than the file".into());
        }
        n
    };
    let size_of = |i: usize| if fixed == 0 { sizes[i] } else { fixed };
    if n == 0 {
        return Err("a track has no samples".into());
    }

    // Chunk offsets.
    let offsets: Vec<u64> = if let Some(b) = child(stbl, b"stco")? {
        let mut c = Cur::new(b);
        c.skip(4)?;
        let k = c.count(4)?;
        (0..k).map(|_| c.u32().map(u64::from)).collect::<R<_>>()?
    } else if let Some(b) = child(stbl, b"co64")? {
        let mut c = Cur::new(b);
        c.skip(4)?;
        let k = c.count(8)?;
        (0..k).map(|_| c.u64()).collect::<R<_>>()?
    } else {
        return Err("missing chunk offsets ('stco'/'co64')".into());
    };

    // Sample-to-chunk runs give each sample's byte offset.
    let mut c = Cur::new(need(stbl, b"stsc")?);
    c.skip(4)?;
    let k = c.count(12)?;
    let mut runs = Vec::with_capacity(k);
    for _ in 0..k {
        let first = c.u32()? as usize;
        let per = c.u32()? as usize;
        c.skip(4)?;
        runs.push((first, per));
    }
    let mut samples: Vec<Sample> = Vec::with_capacity(n);
    'runs: for (i, &(first, per)) in runs.iter().enumerate() {
        let last = runs
            .get(i + 1)
            .map_or(offsets.len(), |r| r.0.saturating_sub(1));
        if first == 0 || (i > 0 && first <= runs[i - 1].0) {
            return Err("invalid sample-to-chunk table".into());
        }
        for chunk in first..=last.min(offsets.len()) {
            let mut off = offsets[chunk - 1];
            for _ in 0..per {
                if samples.len() == n {
                    break 'runs;
                }
                let size = size_of(samples.len());
                if off.saturating_add(u64::from(size)) > file_len {
                    return Err("a frame lies past the end of the file (truncated file)".into());
                }
                samples.push(Sample {
                    offset: off,
                    size,
                    cts: 0,
                    duration: 0,
                });
                off += u64::from(size);
            }
        }
    }
    if samples.len() < n {
        return Err(format!("chunk tables list {} of {n} frames", samples.len()));
    }

    // Decode times (stts) plus composition offsets (ctts) give presentation times.
    let mut c = Cur::new(need(stbl, b"stts")?);
    c.skip(4)?;
    let k = c.count(8)?;
    let mut dts = 0i64;
    let mut i = 0usize;
    for _ in 0..k {
        let count = c.u32()? as usize;
        let delta = i64::from(c.u32()?);
        for _ in 0..count {
            if i == n {
                break;
            }
            samples[i].cts = dts;
            samples[i].duration = u32::try_from(delta).unwrap_or(0);
            dts = dts.saturating_add(delta);
            i += 1;
        }
    }
    if i < n {
        return Err(format!("time table lists {i} of {n} frames"));
    }
    if let Some(b) = child(stbl, b"ctts")? {
        let mut c = Cur::new(b);
        let version = c.u8()?;
        c.skip(3)?;
        let k = c.count(8)?;
        let mut i = 0usize;
        for _ in 0..k {
            let count = c.u32()? as usize;
            let raw = c.u32()?;
            // Version 0 offsets are unsigned, but writers put negative values there too.
            let off = if version == 0 && raw < 0x8000_0000 {
                i64::from(raw)
            } else {
                i64::from(raw as i32)
            };
            for _ in 0..count {
                if i == n {
                    break;
                }
                samples[i].cts = samples[i].cts.saturating_add(off);
                i += 1;
            }
        }
    }
    Ok(samples)
}
