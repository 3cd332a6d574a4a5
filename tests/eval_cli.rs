//! `cyclegan eval` refuses bad input with a message naming the option or file, never a panic.
//! (FID/KID values against the reference are in `fid_reference.rs`.)

mod common;

use std::time::Duration;

use common::{bin, run, write_good};

const TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn bad_eval_input_gets_clear_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let two = tmp.path().join("two");
    write_good(&two, 2, 16, 1);
    let one = tmp.path().join("one");
    write_good(&one, 1, 16, 2);

    // No weights in the cache: say where they go and how to pass them.
    let f = run(
        bin()
            .env("XDG_CACHE_HOME", tmp.path().join("empty-cache"))
            .args(["eval", "--real"])
            .arg(&two)
            .arg("--fake")
            .arg(&two),
        TIMEOUT,
    );
    f.expect(1);
    assert!(
        f.stderr.contains("inception_v3_fid.safetensors") && f.stderr.contains("--inception"),
        "{}",
        f.describe()
    );

    // A weights file that is not one.
    let bogus = tmp.path().join("bogus.safetensors");
    std::fs::write(&bogus, b"not safetensors").unwrap();
    let with = |args: &[&std::ffi::OsStr]| {
        let mut c = bin();
        c.arg("eval").arg("--inception").arg(&bogus).args(args);
        run(&mut c, TIMEOUT)
    };
    let f = with(&[
        "--real".as_ref(),
        two.as_os_str(),
        "--fake".as_ref(),
        two.as_os_str(),
    ]);
    f.expect(1);
    assert!(f.stderr.contains("bogus.safetensors"), "{}", f.describe());

    // Too few images, a missing folder, a missing weights file: each named.
    let f = with(&[
        "--real".as_ref(),
        two.as_os_str(),
        "--fake".as_ref(),
        one.as_os_str(),
    ]);
    f.expect(1);
    assert!(
        f.stderr.contains("one") && f.stderr.contains("at least 2 images"),
        "{}",
        f.describe()
    );
    let missing = tmp.path().join("nowhere");
    let f = with(&[
        "--real".as_ref(),
        missing.as_os_str(),
        "--fake".as_ref(),
        two.as_os_str(),
    ]);
    f.expect(1);
    assert!(f.stderr.contains("nowhere"), "{}", f.describe());
    let f = run(
        bin()
            .args(["eval", "--inception"])
            .arg(tmp.path().join("absent.safetensors"))
            .arg("--real")
            .arg(&two)
            .arg("--fake")
            .arg(&two),
        TIMEOUT,
    );
    f.expect(1);
    assert!(f.stderr.contains("absent.safetensors"), "{}", f.describe());

    // Usage errors: half a pair, or nothing to compare.
    run(bin().args(["eval", "--real"]).arg(&two), TIMEOUT).expect(2);
    let f = run(bin().args(["eval", "--inception"]).arg(&bogus), TIMEOUT);
    f.expect(1);
    assert!(
        f.stderr.contains("--real DIR --fake DIR"),
        "{}",
        f.describe()
    );
}
