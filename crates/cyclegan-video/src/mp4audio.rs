//! Audio copied from an MP4/MOV into a finished MP4, without FFmpeg: the audio tracks' samples
//! are copied as they are (no decoding), with their sample description, durations and their
//! place relative to the video, so a translated clip keeps its sound in the default build.
//!
//! The video is written first by the native writer (`ftyp`, `mdat`, `moov`); then the audio
//! samples go into a second `mdat` after it and a new `moov` describes both (the old one is cut
//! off, or blanked to `free` where something follows it). The audio is therefore not interleaved
//! with the video: every player reads such files, only streaming over a network would seek.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::mp4demux::{self, AudioTrack, Probe};
use crate::{Frame, FrameSink, VideoError};

/// Audio codecs an MP4 file can hold, by sample entry code (MOV's PCM variants cannot).
const MP4_AUDIO: &[&[u8; 4]] = &[
    b"mp4a", b"ac-3", b"ec-3", b"ac-4", b"Opus", b"fLaC", b"alac", b".mp3", b"mha1", b"mhm1",
    b"samr", b"sawb", b"ipcm", b"fpcm",
];

/// Samples per chunk of the copied audio (about a second of AAC at 48 kHz).
const CHUNK: usize = 48;

/// What [`crate::audio_tracks`] tells about one audio track.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioTrackInfo {
    /// The sample entry's code: `mp4a` (AAC, MP3), `ac-3`, `Opus`, ...
    pub codec: String,
    /// Number of coded packets (samples).
    pub packets: usize,
    /// Sum of the packets' durations, in seconds.
    pub duration: f64,
}

/// The audio tracks of an MP4/MOV file.
pub(crate) fn audio_tracks(path: &Path) -> Result<Vec<AudioTrackInfo>, VideoError> {
    let mut file = File::open(path).map_err(|e| VideoError::io(path, e))?;
    let len = file.metadata().map_err(|e| VideoError::io(path, e))?.len();
    let moov = mp4demux::read_moov(path, &mut file)?;
    let tracks =
        mp4demux::audio_tracks(&moov.body, len).map_err(|why| VideoError::corrupt(path, why))?;
    Ok(tracks
        .iter()
        .map(|t| AudioTrackInfo {
            codec: String::from_utf8_lossy(&t.codec).into_owned(),
            packets: t.samples.len(),
            duration: media_ticks(t) as f64 / f64::from(t.timescale),
        })
        .collect())
}

fn media_ticks(t: &AudioTrack) -> i64 {
    t.samples.iter().map(|s| i64::from(s.duration)).sum()
}

fn warn(source: &Path, what: &str) {
    eprintln!("warning: {}: {what}", source.display());
}

/// A native MP4 writer whose file gets the audio of `audio_from` when it is finished.
pub(crate) struct Mp4AudioSink {
    pub inner: Box<dyn FrameSink>,
    pub path: PathBuf,
    pub audio_from: PathBuf,
}

impl FrameSink for Mp4AudioSink {
    fn write(&mut self, frame: &Frame) -> Result<(), VideoError> {
        self.inner.write(frame)
    }

    fn finish(self: Box<Self>) -> Result<(), VideoError> {
        self.inner.finish()?;
        crate::guard(&self.path, || copy_audio(&self.path, &self.audio_from)).map(|_| ())
    }
}

/// One audio track ready to be written: its samples and where it starts.
struct Planned<'a> {
    track: &'a AudioTrack,
    /// Movie ticks of silence before it (output timeline).
    empty: u64,
    /// Media ticks of the track at which playing starts.
    media_time: i64,
}

/// Add the audio tracks of `source` (an MP4/MOV) that MP4 can hold to the finished MP4 `out`.
/// Returns how many were copied. A source whose audio cannot be read, or holds none, leaves
/// `out` as it is (with a warning where audio is lost); only failing to write `out` is an error.
pub(crate) fn copy_audio(out: &Path, source: &Path) -> Result<usize, VideoError> {
    let (tracks, video_start, source_movie_ts) = match read_source(source) {
        Ok(t) => t,
        Err(e) => {
            warn(source, &format!("no audio copied ({})", e.reason()));
            return Ok(0);
        }
    };
    if tracks.is_empty() {
        return Ok(0);
    }
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(out)
        .map_err(|e| VideoError::io(out, e))?;
    let out_len = f.metadata().map_err(|e| VideoError::io(out, e))?.len();
    let moov = mp4demux::read_moov(out, &mut f)?;
    let movie_ts =
        mp4demux::movie_timescale(&moov.body).map_err(|why| VideoError::corrupt(out, why))?;

    let mut planned = Vec::new();
    for t in &tracks {
        let name = String::from_utf8_lossy(&t.codec).trim().to_string();
        if !MP4_AUDIO.contains(&&t.codec) {
            warn(
                source,
                &format!("{name} audio left out: MP4 cannot hold it"),
            );
            continue;
        }
        // Where this track's media time `media_time` plays on the source's timeline, made
        // relative to the source's first video frame (which the output shows at 0).
        let (edit_empty, edit_media) = t.edit.map_or((0.0, 0), |e| {
            (e.empty as f64 / f64::from(source_movie_ts), e.media_time)
        });
        let start = edit_empty - video_start;
        let ats = f64::from(t.timescale);
        let (empty, media_time) = if start >= 0.0 {
            ((start * f64::from(movie_ts)).round() as u64, edit_media)
        } else {
            (0, edit_media + (-start * ats).round() as i64)
        };
        if media_time >= media_ticks(t) {
            warn(
                source,
                &format!("{name} audio left out: it ends before the video starts"),
            );
            continue;
        }
        planned.push(Planned {
            track: t,
            empty,
            media_time,
        });
    }
    if planned.is_empty() {
        return Ok(0);
    }

    // Cut the old `moov` off where it ends the file (as our writer leaves it), else blank it.
    let write_pos = if moov.end == out_len {
        f.set_len(moov.pos).map_err(|e| VideoError::io(out, e))?;
        moov.pos
    } else {
        f.seek(SeekFrom::Start(moov.pos + 4))
            .and_then(|_| f.write_all(b"free"))
            .map_err(|e| VideoError::io(out, e))?;
        out_len
    };
    let mut src = File::open(source).map_err(|e| VideoError::io(source, e))?;
    f.seek(SeekFrom::Start(write_pos))
        .map_err(|e| VideoError::io(out, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, &mut f);
    let total: u64 = planned
        .iter()
        .flat_map(|p| &p.track.samples)
        .map(|s| u64::from(s.size))
        .sum();
    let io = |e| VideoError::io(out, e);
    w.write_all(&1u32.to_be_bytes()).map_err(io)?;
    w.write_all(b"mdat").map_err(io)?;
    w.write_all(&(16 + total).to_be_bytes()).map_err(io)?;
    let mut pos = write_pos + 16;
    let mut chunk_offsets = Vec::new();
    let mut buf = Vec::new();
    for p in &planned {
        let mut offsets = Vec::new();
        for (i, s) in p.track.samples.iter().enumerate() {
            if i % CHUNK == 0 {
                offsets.push(pos);
            }
            buf.resize(s.size as usize, 0);
            src.seek(SeekFrom::Start(s.offset))
                .and_then(|_| src.read_exact(&mut buf))
                .map_err(|e| VideoError::io(source, e))?;
            w.write_all(&buf).map_err(io)?;
            pos += u64::from(s.size);
        }
        chunk_offsets.push(offsets);
    }
    let new_moov = rebuild_moov(&moov.body, movie_ts, &planned, &chunk_offsets)
        .map_err(|why| VideoError::corrupt(out, why))?;
    w.write_all(&new_moov).map_err(io)?;
    w.flush().map_err(io)?;
    drop(w);
    f.sync_all().map_err(|e| VideoError::io(out, e))?;
    Ok(planned.len())
}

/// The audio tracks of `source`, where its first video frame is shown (in seconds on its movie
/// timeline, 0 without video), and its movie timescale.
fn read_source(source: &Path) -> Result<(Vec<AudioTrack>, f64, u32), VideoError> {
    let mut file = File::open(source).map_err(|e| VideoError::io(source, e))?;
    let len = file
        .metadata()
        .map_err(|e| VideoError::io(source, e))?
        .len();
    let moov = mp4demux::read_moov(source, &mut file)?;
    let corrupt = |why| VideoError::corrupt(source, why);
    let tracks = mp4demux::audio_tracks(&moov.body, len).map_err(corrupt)?;
    let movie_ts = mp4demux::movie_timescale(&moov.body).map_err(corrupt)?;
    let video_start = match mp4demux::read(source, &mut file) {
        Ok(Probe::Video(v)) => {
            let first = v.samples.iter().map(|s| s.cts).min().unwrap_or(0);
            let vts = f64::from(v.timescale);
            match v.edit {
                Some(e) => {
                    e.empty as f64 / f64::from(v.movie_timescale)
                        + (first - e.media_time) as f64 / vts
                }
                None => first as f64 / vts,
            }
        }
        _ => 0.0,
    };
    Ok((tracks, video_start, movie_ts))
}

// ---------------------------------------------------------------------------------------------
// Boxes

fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(body.len() + 8);
    b.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    b.extend_from_slice(kind);
    b.extend_from_slice(body);
    b
}

fn full_box(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 4);
    v.extend_from_slice(&((u32::from(version) << 24) | (flags & 0xff_ffff)).to_be_bytes());
    v.extend_from_slice(body);
    boxed(kind, &v)
}

/// Big-endian bytes of a list of fields.
macro_rules! be {
    ($($v:expr),* $(,)?) => {{
        let mut v: Vec<u8> = Vec::new();
        $(v.extend_from_slice(&$v.to_be_bytes());)*
        v
    }};
}

const IDENTITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// The output's `moov`: its boxes as they were, `mvhd` updated (duration, next track id), and a
/// `trak` per planned audio track.
fn rebuild_moov(
    old: &[u8],
    movie_ts: u32,
    planned: &[Planned],
    chunk_offsets: &[Vec<u64>],
) -> Result<Vec<u8>, String> {
    let mut body = Vec::with_capacity(old.len() + 4096);
    let mut mvhd_at = None;
    for (kind, child) in mp4demux::children(old)? {
        if &kind == b"mvhd" {
            mvhd_at = Some((body.len(), child.to_vec()));
        }
        body.extend_from_slice(&boxed(&kind, child));
    }
    let (at, mut mvhd) = mvhd_at.ok_or("the written video has no 'mvhd' box")?;
    if mvhd.len() < 100 {
        return Err("the written video's 'mvhd' box is too short".into());
    }
    let v1 = mvhd[0] == 1;
    let n = mvhd.len();
    // Ids of the new tracks start at the movie's next free track id.
    let next_id = u32::from_be_bytes([mvhd[n - 4], mvhd[n - 3], mvhd[n - 2], mvhd[n - 1]]).max(2);
    let mut movie_duration = if v1 {
        u64::from_be_bytes(mvhd[24..32].try_into().unwrap_or_default())
    } else {
        u64::from(u32::from_be_bytes(
            mvhd[16..20].try_into().unwrap_or_default(),
        ))
    };
    for (i, p) in planned.iter().enumerate() {
        let id = next_id + i as u32;
        let (trak, duration) = audio_trak(p, id, movie_ts, &chunk_offsets[i]);
        movie_duration = movie_duration.max(duration);
        body.extend_from_slice(&trak);
    }
    let next = next_id + planned.len() as u32;
    mvhd[n - 4..].copy_from_slice(&next.to_be_bytes());
    if v1 {
        mvhd[24..32].copy_from_slice(&movie_duration.to_be_bytes());
    } else {
        let d = u32::try_from(movie_duration).unwrap_or(u32::MAX);
        mvhd[16..20].copy_from_slice(&d.to_be_bytes());
    }
    // The rewritten mvhd has the same length: put it back in place.
    body[at + 8..at + 8 + mvhd.len()].copy_from_slice(&mvhd);
    Ok(boxed(b"moov", &body))
}

/// A `trak` for one copied audio track and its duration on the movie timeline.
fn audio_trak(p: &Planned, id: u32, movie_ts: u32, offsets: &[u64]) -> (Vec<u8>, u64) {
    let t = p.track;
    let media = media_ticks(t);
    let shown = (media - p.media_time).max(0) as f64 / f64::from(t.timescale);
    let segment = (shown * f64::from(movie_ts)).round() as u64;
    let duration = p.empty + segment;

    let mut tkhd = be![
        0u64, 0u64, id, 0u32, duration, 0u64, 0i16, 1i16, 0x0100i16, 0u16
    ];
    for m in IDENTITY_MATRIX {
        tkhd.extend_from_slice(&m.to_be_bytes());
    }
    tkhd.extend_from_slice(&be![0u32, 0u32]);
    let mut trak = full_box(b"tkhd", 1, 3, &tkhd);

    if p.empty > 0 || p.media_time != 0 {
        let mut elst = be![if p.empty > 0 { 2u32 } else { 1u32 }];
        if p.empty > 0 {
            elst.extend_from_slice(&be![p.empty, -1i64, 1i16, 0i16]);
        }
        elst.extend_from_slice(&be![segment, p.media_time, 1i16, 0i16]);
        trak.extend_from_slice(&boxed(b"edts", &full_box(b"elst", 1, 0, &elst)));
    }

    let mdhd = full_box(
        b"mdhd",
        1,
        0,
        &be![0u64, 0u64, t.timescale, media as u64, t.language, 0u16],
    );
    let mut hdlr = be![0u32];
    hdlr.extend_from_slice(b"soun");
    hdlr.extend_from_slice(&be![0u32, 0u32, 0u32]);
    hdlr.extend_from_slice(b"SoundHandler\0");
    let hdlr = full_box(b"hdlr", 0, 0, &hdlr);
    let smhd = full_box(b"smhd", 0, 0, &be![0i16, 0u16]);
    let mut dref = be![1u32];
    dref.extend_from_slice(&full_box(b"url ", 0, 1, &[]));
    let dinf = boxed(b"dinf", &full_box(b"dref", 0, 0, &dref));

    let mut stsd = be![1u32];
    stsd.extend_from_slice(&t.entry);
    let mut stts = Vec::new();
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for s in &t.samples {
        match runs.last_mut() {
            Some((count, delta)) if *delta == s.duration => *count += 1,
            _ => runs.push((1, s.duration)),
        }
    }
    stts.extend_from_slice(&be![runs.len() as u32]);
    for (count, delta) in runs {
        stts.extend_from_slice(&be![count, delta]);
    }
    let mut stsz = be![0u32, t.samples.len() as u32];
    for s in &t.samples {
        stsz.extend_from_slice(&s.size.to_be_bytes());
    }
    // Every chunk holds CHUNK samples but the last, which holds the rest.
    let chunks = offsets.len() as u32;
    let last = (t.samples.len() - (offsets.len() - 1) * CHUNK) as u32;
    let stsc = if chunks == 1 {
        be![1u32, 1u32, last, 1u32]
    } else if last == CHUNK as u32 {
        be![1u32, 1u32, CHUNK as u32, 1u32]
    } else {
        be![2u32, 1u32, CHUNK as u32, 1u32, chunks, last, 1u32]
    };
    let mut co64 = be![offsets.len() as u32];
    for o in offsets {
        co64.extend_from_slice(&o.to_be_bytes());
    }
    let stbl = [
        full_box(b"stsd", 0, 0, &stsd),
        full_box(b"stts", 0, 0, &stts),
        full_box(b"stsc", 0, 0, &stsc),
        full_box(b"stsz", 0, 0, &stsz),
        full_box(b"co64", 0, 0, &co64),
    ]
    .concat();
    let minf = [smhd, dinf, boxed(b"stbl", &stbl)].concat();
    let mdia = [mdhd, hdlr, boxed(b"minf", &minf)].concat();
    trak.extend_from_slice(&boxed(b"mdia", &mdia));
    (boxed(b"trak", &trak), duration)
}
