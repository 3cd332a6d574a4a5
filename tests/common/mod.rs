//! Helpers shared by the root crate's tests: running the `cyclegan` binary with a timeout (and
//! its peak memory), the tiny network of training tests, small generated pictures, and a corpus
//! of hostile files.

#![allow(dead_code)]

pub mod cut_fixture;
pub mod cycle_fixture;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cyclegan::config::TrainConfig;
use cyclegan::model::{DiscriminatorConfig, GeneratorConfig};
use image::{DynamicImage, ImageFormat};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cyclegan"))
}

/// How a child process ended.
#[derive(Debug)]
pub struct Finished {
    /// What was run (for messages).
    pub what: String,
    /// Exit status, when it exited.
    pub code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Peak resident memory, in KiB.
    pub max_rss_kib: u64,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

impl Finished {
    /// Exit status and streams, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "`{}`: exit {:?} signal {:?} after {:.1} s\n--- stdout\n{}\n--- stderr\n{}",
            self.what,
            self.code,
            self.signal,
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }

    /// Exited with `code`, and did not panic on the way.
    pub fn expect(&self, code: i32) -> &Self {
        self.no_panic();
        assert_eq!(self.code, Some(code), "{}", self.describe());
        self
    }

    /// Nothing in its output says a thread panicked.
    pub fn no_panic(&self) -> &Self {
        assert!(
            !self.stderr.contains("panicked") && !self.stdout.contains("panicked"),
            "panic: {}",
            self.describe()
        );
        self
    }
}

/// A running child: its pid stays ours (it is only reaped by [`Spawned::wait`]), so signalling
/// it can never reach another process.
pub struct Spawned {
    pub pid: i32,
    started: Instant,
    what: String,
    out: JoinHandle<Vec<u8>>,
    err: JoinHandle<Vec<u8>>,
    _child: Child,
}

impl Spawned {
    /// Start `cmd` with stdin closed and both output streams captured.
    pub fn start(cmd: &mut Command) -> Spawned {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let drain = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = r.read_to_end(&mut v);
                v
            })
        };
        let out = drain(Box::new(child.stdout.take().unwrap()));
        let err = drain(Box::new(child.stderr.take().unwrap()));
        Spawned {
            pid: child.id() as i32,
            started: Instant::now(),
            what,
            out,
            err,
            _child: child,
        }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// True once the child has exited (it is left a zombie, not reaped).
    pub fn exited(&self) -> bool {
        // SAFETY: plain system call on our own child; WNOWAIT leaves it unreaped.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let r = libc::waitid(
                libc::P_PID,
                self.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            );
            r == 0 && info.si_pid() == self.pid
        }
    }

    /// Send `signal` (harmless once it has exited: a zombie ignores signals).
    pub fn signal(&self, signal: i32) {
        // SAFETY: the pid is our unreaped child.
        unsafe {
            libc::kill(self.pid, signal);
        }
    }

    /// Wait for the exit (SIGKILL and panic after `timeout`), reap it and collect its output.
    pub fn wait(self, timeout: Duration) -> Finished {
        let mut timed_out = false;
        while !self.exited() {
            if self.started.elapsed() > timeout {
                self.signal(libc::SIGKILL);
                timed_out = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut status = 0;
        // SAFETY: reaping our own child, once.
        let rusage = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            libc::wait4(self.pid, &mut status, 0, &mut ru);
            ru
        };
        let elapsed = self.started.elapsed();
        let stdout = String::from_utf8_lossy(&self.out.join().unwrap()).into_owned();
        let stderr = String::from_utf8_lossy(&self.err.join().unwrap()).into_owned();
        let f = Finished {
            what: self.what,
            code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
            signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
            stdout,
            stderr,
            max_rss_kib: rusage.ru_maxrss as u64,
            elapsed,
        };
        assert!(
            !timed_out,
            "hung: killed after {} s: {}",
            timeout.as_secs(),
            f.describe()
        );
        f
    }
}

/// The tiny network every training test uses: `ngf` generator filters, one residual block, a
/// 2-layer discriminator with 4 filters, 16x16 crops of images resized to 20x20.
pub fn tiny(ngf: usize) -> TrainConfig {
    TrainConfig {
        generator: GeneratorConfig::resnet(ngf, 1),
        discriminator: DiscriminatorConfig::patch(4, 2),
        load_size: 20,
        crop_size: 16,
        ..TrainConfig::default()
    }
}

/// The same network as [`tiny`], as `cyclegan train` options.
pub fn tiny_network(ngf: usize) -> Vec<String> {
    let c = tiny(ngf);
    [
        ("--ngf", c.generator.ngf),
        ("--blocks", c.generator.blocks),
        ("--ndf", c.discriminator.ndf),
        ("--d-layers", c.discriminator.layers),
        ("--load-size", c.load_size as usize),
        ("--crop-size", c.crop_size as usize),
    ]
    .iter()
    .flat_map(|(flag, v)| [flag.to_string(), v.to_string()])
    .collect()
}

/// A ResNet generator (`ngf` filters, `blocks` residual blocks) with the training's N(0, 0.02)
/// initial weights drawn from `seed`.
pub fn random_generator(ngf: usize, blocks: usize, seed: u64) -> cyclegan::model::ResnetGenerator {
    let device = burn::prelude::Device::flex();
    let mut g =
        cyclegan::model::ResnetGenerator::new(&GeneratorConfig::resnet(ngf, blocks), &device);
    cyclegan::model::weights::init_normal(&mut g, &mut ChaCha8Rng::seed_from_u64(seed));
    g
}

/// [`random_generator`] saved as `dir/g.safetensors`, a file `translate --model` takes.
pub fn random_generator_file(dir: &Path, ngf: usize, blocks: usize) -> PathBuf {
    use cyclegan::model::weights::{safetensors_to_bytes, state_dict};
    let mut g = random_generator(ngf, blocks, 11);
    let path = dir.join("g.safetensors");
    std::fs::write(
        &path,
        safetensors_to_bytes(&state_dict(&mut g), None).unwrap(),
    )
    .unwrap();
    path
}

/// Run `cmd` to completion (at most `timeout`, else the test fails as a hang).
pub fn run(cmd: &mut Command, timeout: Duration) -> Finished {
    Spawned::start(cmd).wait(timeout)
}

pub use cyclegan_testkit::picture;

/// `img` encoded as `format`.
pub fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    cyclegan_testkit::encode(img.clone(), format)
}

/// Write `n` good PNG pictures `good_NN.png` into `dir`; returns their paths.
pub fn write_good(dir: &Path, n: usize, size: u32, seed: u64) -> Vec<PathBuf> {
    cyclegan_testkit::write_pictures(dir, "good", n, size, seed)
}

/// CRC-32 (ISO-HDLC), for PNG chunks we forge.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A valid PNG whose IHDR claims `w`x`h` (CRC fixed, so only the size is wrong).
pub fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut b = encode(
        &DynamicImage::ImageRgb8(picture(8, 8, 77)),
        ImageFormat::Png,
    );
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A valid baseline JPEG whose frame header claims `w`x`h`.
pub fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut b = encode(
        &DynamicImage::ImageRgb8(picture(16, 16, 78)),
        ImageFormat::Jpeg,
    );
    let sof = b
        .windows(2)
        .position(|m| m[0] == 0xFF && (0xC0..=0xC2).contains(&m[1]))
        .expect("a frame header");
    b[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    b[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    b
}

/// What a file of the corpus is, and so what every command must do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An image name over content no decoder can use: refused and named by every command.
    Bad,
    /// A JPEG cut off before its end: refused by `prepare` and `doctor` (strict decoding); the
    /// training loader and `translate` decode it leniently (missing part grey) or refuse it.
    CutJpeg,
    /// Unusual but valid (CMYK, 16-bit, alpha, grey, palette, 1x1, misnamed format, non-UTF-8
    /// name): read and used by every command.
    Odd,
    /// Valid, with a side of 4 pixels or less (1x1, 1x300, 400x2): the generator's bottleneck
    /// would be 1 pixel; `translate` must translate it or refuse it by name; everything else
    /// uses it.
    Tiny,
    /// Either decodes or is refused by name (damage a decoder may tolerate).
    Either,
    /// A broken video: `prepare` names it; image commands ignore it (not an image extension).
    BadVideo,
    /// Not a regular image file (FIFO, folder, symlink loop, dangling link, .txt): may be
    /// ignored, must not hang anything.
    Ignored,
}

/// One file of the corpus.
#[derive(Debug, Clone)]
pub struct Entry {
    /// File name inside the corpus folder (may be non-UTF-8).
    pub name: OsString,
    pub kind: Kind,
    /// What it is, for messages.
    pub what: &'static str,
}

impl Entry {
    /// True for the valid picture under a non-UTF-8 name.
    pub fn is_non_utf8_picture(&self) -> bool {
        self.kind == Kind::Odd && self.name.to_str().is_none()
    }

    /// The name as it appears in messages (`Path::display`).
    pub fn shown(&self) -> String {
        Path::new(&self.name).display().to_string()
    }
}

/// True when this process can read files whatever their permissions (root).
pub fn is_root() -> bool {
    // SAFETY: no arguments, no side effects.
    unsafe { libc::geteuid() == 0 }
}

/// A small valid MP4 (H.264), made with the video crate's writer.
pub fn good_mp4(path: &Path) {
    let times: Vec<f64> = (0..6).map(|i| f64::from(i) / 6.0).collect();
    cyclegan_testkit::write_video(path, &times, |i| picture(32, 32, 900 + i as u64));
}

/// A small valid animated GIF.
pub fn good_gif() -> Vec<u8> {
    use image::codecs::gif::GifEncoder;
    let mut buf = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut buf);
        for i in 0..4 {
            let rgba = DynamicImage::ImageRgb8(picture(16, 16, 950 + i)).to_rgba8();
            enc.encode_frame(image::Frame::new(rgba)).unwrap();
        }
    }
    buf
}

/// Write the hostile corpus into `dir` (created); returns what each file is.
///
/// Everything is generated here: empty and truncated files, text and random bytes under image
/// names, headers claiming 20000x20000 and more (decompression bombs), colour modes a model
/// does not take directly, 1x1 and 1-pixel-wide pictures, misnamed formats, non-UTF-8 names,
/// unreadable permissions, a FIFO, a folder named like an image, a symlink loop, a dangling
/// link, and broken videos.
pub fn write_corpus(dir: &Path, seed: u64) -> Vec<Entry> {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut noise = |n: usize| -> Vec<u8> { (0..n).map(|_| rng.random()).collect() };
    let rgb = DynamicImage::ImageRgb8(picture(24, 24, seed));
    let jpeg = encode(&rgb, ImageFormat::Jpeg);
    let png = encode(&rgb, ImageFormat::Png);
    let bmp = encode(&rgb, ImageFormat::Bmp);
    let mut out = Vec::new();
    let mut put = |name: &[u8], kind: Kind, what: &'static str, bytes: &[u8]| {
        let name = OsStr::from_bytes(name).to_os_string();
        std::fs::write(dir.join(&name), bytes).unwrap();
        out.push(Entry { name, kind, what });
    };
    use Kind::*;

    // Empty and cut files.
    put(b"empty.jpg", Bad, "zero bytes", b"");
    put(b"empty.png", Bad, "zero bytes", b"");
    put(
        b"jpeg_soi_only.jpg",
        Bad,
        "JPEG start marker only",
        &jpeg[..2],
    );
    put(
        b"jpeg_cut_20.jpg",
        Bad,
        "JPEG cut after 20 bytes",
        &jpeg[..20],
    );
    let sos = jpeg.windows(2).position(|m| m == [0xFF, 0xDA]).unwrap();
    put(
        b"jpeg_no_scan.jpg",
        Either,
        "JPEG headers only",
        &jpeg[..sos],
    );
    put(
        b"jpeg_cut_half.jpg",
        CutJpeg,
        "JPEG cut in half",
        &jpeg[..jpeg.len() / 2],
    );
    put(
        b"jpeg_cut_end.jpg",
        CutJpeg,
        "JPEG without its last 2 bytes",
        &jpeg[..jpeg.len() - 2],
    );
    put(b"png_sig_only.png", Bad, "PNG signature only", &png[..8]);
    put(b"png_cut_ihdr.png", Bad, "PNG cut inside IHDR", &png[..20]);
    put(
        b"png_cut_half.png",
        Bad,
        "PNG cut in half",
        &png[..png.len() / 2],
    );
    put(
        b"png_no_iend.png",
        Either,
        "PNG without IEND",
        &png[..png.len() - 12],
    );
    let mut flipped = png.clone();
    let at = flipped.len() - 20;
    flipped[at] ^= 0x5A;
    put(
        b"png_idat_flipped.png",
        Either,
        "PNG with a flipped IDAT byte",
        &flipped,
    );
    put(
        b"bmp_cut.bmp",
        Either,
        "BMP cut in half",
        &bmp[..bmp.len() / 2],
    );
    put(
        b"bmp_header_only.bmp",
        Bad,
        "BMP cut after 30 bytes",
        &bmp[..30],
    );

    // Decompression bombs and absurd sizes: refused from the header.
    put(
        b"bomb_png_20000.png",
        Bad,
        "PNG claiming 20000x20000",
        &png_claiming(20000, 20000),
    );
    put(
        b"bomb_png_16000.png",
        Bad,
        "PNG claiming 16000x16000 (over the memory cap)",
        &png_claiming(16000, 16000),
    );
    put(
        b"bomb_png_wide.png",
        Bad,
        "PNG claiming 4000000000x1",
        &png_claiming(4_000_000_000, 1),
    );
    put(
        b"bomb_png_zero.png",
        Bad,
        "PNG claiming 0x8",
        &png_claiming(0, 8),
    );
    put(
        b"bomb_jpeg_20000.jpg",
        Bad,
        "JPEG claiming 20000x20000",
        &jpeg_claiming(20000, 20000),
    );
    put(
        b"bomb_jpeg_65500.jpg",
        Bad,
        "JPEG claiming 65500x65500",
        &jpeg_claiming(65500, 65500),
    );
    let mut bmp_bomb = bmp.clone();
    bmp_bomb[18..22].copy_from_slice(&30000i32.to_le_bytes());
    bmp_bomb[22..26].copy_from_slice(&30000i32.to_le_bytes());
    put(
        b"bomb_bmp_30000.bmp",
        Bad,
        "BMP claiming 30000x30000",
        &bmp_bomb,
    );

    // Not images at all, under image names.
    put(
        b"text.jpg",
        Bad,
        "text named .jpg",
        b"this is not a picture\n",
    );
    put(b"text.png", Bad, "text named .png", b"hello\n");
    put(
        b"html.jpeg",
        Bad,
        "HTML named .jpeg",
        b"<!DOCTYPE html><html><body>404</body></html>",
    );
    put(
        b"pdf.jpg",
        Bad,
        "PDF header named .jpg",
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
    );
    put(b"zeros.jpg", Bad, "4096 zero bytes", &[0u8; 4096]);
    put(b"random.jpg", Bad, "random bytes", &noise(3000));
    put(b"random.webp", Bad, "random bytes", &noise(500));
    put(b"random.bmp", Bad, "random bytes", &noise(500));
    let mut riff = b"RIFF\x40\0\0\0WEBPVP8 ".to_vec();
    riff.extend(noise(60));
    put(
        b"webp_garbage.webp",
        Bad,
        "RIFF/WEBP header over garbage",
        &riff,
    );
    let mut sig = png[..8].to_vec();
    sig.extend(noise(400));
    put(
        b"png_sig_noise.png",
        Bad,
        "PNG signature over random bytes",
        &sig,
    );
    let mut soi = vec![0xFF, 0xD8, 0xFF];
    soi.extend(noise(400));
    put(
        b"jpeg_soi_noise.jpg",
        Either,
        "JPEG start over random bytes",
        &soi,
    );
    let mut ftyp = b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2".to_vec();
    ftyp.extend(noise(200));
    put(b"mp4_named.jpg", Bad, "MP4 header named .jpg", &ftyp);
    put(
        b"junk-\xff\xfe.jpg",
        Bad,
        "text under a non-UTF-8 name",
        b"not a picture",
    );

    // Unusual but valid.
    let cmyk: Vec<u8> = (0..16 * 16)
        .flat_map(|i| [i as u8, 255 - i as u8, 40, 10])
        .collect();
    let mut cmyk_jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut cmyk_jpeg, 90)
        .encode(&cmyk, 16, 16, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    put(b"cmyk.jpg", Odd, "CMYK JPEG", &cmyk_jpeg);
    put(
        b"rgb16.png",
        Odd,
        "16-bit RGB PNG",
        &encode(&DynamicImage::ImageRgb16(rgb.to_rgb16()), ImageFormat::Png),
    );
    put(
        b"gray16.png",
        Odd,
        "16-bit grey PNG",
        &encode(
            &DynamicImage::ImageLuma16(rgb.to_luma16()),
            ImageFormat::Png,
        ),
    );
    put(
        b"rgba.png",
        Odd,
        "RGBA PNG",
        &encode(&DynamicImage::ImageRgba8(rgb.to_rgba8()), ImageFormat::Png),
    );
    let clear = image::RgbaImage::from_pixel(12, 12, image::Rgba([9, 9, 9, 0]));
    put(
        b"rgba_clear.png",
        Odd,
        "fully transparent PNG",
        &encode(&DynamicImage::ImageRgba8(clear), ImageFormat::Png),
    );
    put(
        b"gray_alpha.png",
        Odd,
        "grey+alpha PNG",
        &encode(
            &DynamicImage::ImageLumaA8(rgb.to_luma_alpha8()),
            ImageFormat::Png,
        ),
    );
    put(
        b"gray.jpg",
        Odd,
        "grey JPEG",
        &encode(&DynamicImage::ImageLuma8(rgb.to_luma8()), ImageFormat::Jpeg),
    );
    let mut pal = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut pal, 8, 8);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_palette(vec![255, 0, 0, 0, 0, 255, 20, 200, 20]);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&(0..64).map(|i| (i % 3) as u8).collect::<Vec<_>>())
            .unwrap();
        w.finish().unwrap();
    }
    put(b"palette.png", Odd, "palette PNG", &pal);
    let one = DynamicImage::ImageRgb8(picture(1, 1, 5));
    put(
        b"one_by_one.png",
        Tiny,
        "1x1 PNG",
        &encode(&one, ImageFormat::Png),
    );
    put(
        b"one_by_one.jpg",
        Tiny,
        "1x1 JPEG",
        &encode(&one, ImageFormat::Jpeg),
    );
    put(
        b"strip_1x300.png",
        Tiny,
        "1x300 PNG",
        &encode(
            &DynamicImage::ImageRgb8(picture(1, 300, 6)),
            ImageFormat::Png,
        ),
    );
    put(
        b"strip_400x2.png",
        Tiny,
        "400x2 PNG",
        &encode(
            &DynamicImage::ImageRgb8(picture(400, 2, 7)),
            ImageFormat::Png,
        ),
    );
    put(b"png_named.jpg", Odd, "PNG named .jpg", &png);
    put(b"jpeg_named.png", Odd, "JPEG named .png", &jpeg);
    put(
        b"gif_named.png",
        Odd,
        "GIF named .png",
        &encode(&rgb, ImageFormat::Gif),
    );
    put(b"UPPER.JPG", Odd, "upper-case extension", &jpeg);
    put(
        b"caf\xe9-latin1.png",
        Odd,
        "valid PNG under a non-UTF-8 name",
        &encode(
            &DynamicImage::ImageRgb8(picture(24, 24, seed + 500)),
            ImageFormat::Png,
        ),
    );
    let locked = b"no_permission.png";
    put(
        locked,
        if is_root() { Odd } else { Bad },
        "mode 000 (root reads it anyway)",
        &png,
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join(OsStr::from_bytes(locked)),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();

    // Broken videos.
    let good_mp4_path = dir.join(".tmp_good.mp4");
    good_mp4(&good_mp4_path);
    let mp4 = std::fs::read(&good_mp4_path).unwrap();
    std::fs::remove_file(&good_mp4_path).unwrap();
    let gif = good_gif();
    put(b"empty.mp4", BadVideo, "zero-byte MP4", b"");
    put(
        b"cut.mp4",
        BadVideo,
        "MP4 cut at 60%",
        &mp4[..mp4.len() * 6 / 10],
    );
    put(
        b"cut_header.mp4",
        BadVideo,
        "MP4 cut after 40 bytes",
        &mp4[..40],
    );
    put(
        b"garbage.mp4",
        BadVideo,
        "random bytes named .mp4",
        &noise(2000),
    );
    put(
        b"ftyp_garbage.mp4",
        BadVideo,
        "ftyp box over garbage",
        &ftyp,
    );
    put(b"text.mp4", BadVideo, "text named .mp4", b"not a video\n");
    put(b"empty.gif", BadVideo, "zero-byte GIF", b"");
    put(
        b"cut.gif",
        BadVideo,
        "GIF cut in half",
        &gif[..gif.len() / 2],
    );
    let mut gif_noise = b"GIF89a".to_vec();
    gif_noise.extend(noise(300));
    put(
        b"garbage.gif",
        BadVideo,
        "GIF header over garbage",
        &gif_noise,
    );

    // Not regular image files.
    put(b"notes.txt", Ignored, "a text file", b"notes\n");
    let special = |name: &[u8], what: &'static str, make: &dyn Fn(&Path)| {
        let name = OsStr::from_bytes(name).to_os_string();
        make(&dir.join(&name));
        Entry {
            name,
            kind: Ignored,
            what,
        }
    };
    let fifo = special(
        b"fifo.png",
        "a FIFO named .png (opening it would block)",
        &|p| {
            let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
            // SAFETY: a valid C string; creates a FIFO.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        },
    );
    let folder = special(b"folder.jpg", "a folder named .jpg", &|p| {
        std::fs::create_dir(p).unwrap()
    });
    let looped = special(b"loop.jpg", "a symlink to itself", &|p| {
        std::os::unix::fs::symlink("loop.jpg", p).unwrap()
    });
    let dangling = special(b"dangling.png", "a symlink to nothing", &|p| {
        std::os::unix::fs::symlink("does-not-exist.png", p).unwrap()
    });
    let up = special(b"up", "a symlink to the parent folder (a cycle)", &|p| {
        std::os::unix::fs::symlink("..", p).unwrap()
    });
    out.extend([fifo, folder, looped, dangling, up]);
    out
}

/// Every path under `dir` with its content (files), link target (symlinks) or kind, without
/// following links or opening FIFOs: to prove a command left its inputs untouched.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let mode = m.permissions().mode();
            let v = if m.file_type().is_symlink() {
                format!("link {:?}", std::fs::read_link(&p).unwrap())
            } else if m.is_dir() {
                stack.push(p.clone());
                format!("dir {mode:o}")
            } else if m.is_file() {
                match std::fs::read(&p) {
                    Ok(bytes) => format!("file {mode:o} {} {:x}", bytes.len(), fnv(&bytes)),
                    Err(_) => format!("unreadable file {mode:o} {}", m.len()),
                }
            } else {
                format!("special {mode:o}")
            };
            out.insert(p, v);
        }
    }
    out
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A PyTorch fixture in tests/data: of the source tree the test was built from, or of the
/// current folder when that tree is not here (a test binary carried to a GPU machine,
/// `scripts/gpu_check.sh`).
pub fn fixture(name: &str) -> PathBuf {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let dir = if built_from.is_dir() {
        built_from
    } else {
        PathBuf::from("tests/data")
    };
    dir.join(name)
}

/// The name of the device under test: `CYCLEGAN_TEST_DEVICE` (cpu, wgpu, vulkan, tch; the GPU
/// ones need their cargo feature), `cpu` by default.
pub fn test_device_name() -> String {
    std::env::var("CYCLEGAN_TEST_DEVICE").unwrap_or_else(|_| "cpu".into())
}

/// The device under test ([`test_device_name`]).
pub fn test_device() -> burn::prelude::Device {
    cyclegan::device::DeviceArg::from_name(&test_device_name()).expect("CYCLEGAN_TEST_DEVICE")
}
