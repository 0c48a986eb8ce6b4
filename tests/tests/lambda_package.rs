//! The Lambda package: `scripts/package-lambda` builds `dist/aws/bootstrap.zip`; its bootstrap
//! needs nothing newer than glibc 2.34 (Lambda's `provided.al2023`), is executable inside the
//! zip, and answers invocations through the Runtime API.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use object::Endianness;
use object::elf::FileHeader64;
use object::read::elf::FileHeader;
use tempest_tests::lambda::{LambdaInstance, http_event, http_response};

/// glibc of Amazon Linux 2023, the base of `provided.al2023`.
const LAMBDA_GLIBC: (u32, u32) = (2, 34);

/// (library, version) pairs the binary needs, from its `.gnu.version_r` section.
fn needed_versions(elf: &[u8]) -> BTreeSet<(String, String)> {
    let header = FileHeader64::<Endianness>::parse(elf).expect("a 64-bit ELF file");
    let endian = header.endian().expect("endianness");
    let sections = header.sections(endian, elf).expect("section table");
    let (mut needs, link) = sections
        .gnu_verneed(endian, elf)
        .expect("version needs")
        .expect("a dynamically linked binary has version needs");
    let strings = sections.strings(endian, elf, link).expect("strings");
    let mut out = BTreeSet::new();
    while let Some((need, mut aux)) = needs.next().expect("verneed entry") {
        let file = String::from_utf8_lossy(need.file(endian, strings).expect("file")).into_owned();
        while let Some(a) = aux.next().expect("vernaux entry") {
            let name = String::from_utf8_lossy(a.name(endian, strings).expect("name"));
            out.insert((file.clone(), name.into_owned()));
        }
    }
    out
}

fn glibc_version(name: &str) -> Option<(u32, u32)> {
    let v = name.strip_prefix("GLIBC_")?;
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[tokio::test]
async fn the_lambda_package_runs_on_provided_al2023() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(root.join("scripts/package-lambda"))
        .output()
        .expect("run scripts/package-lambda");
    assert!(
        out.status.success(),
        "package-lambda failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let zip_path = root.join("dist/aws/bootstrap.zip");
    let zip_size = std::fs::metadata(&zip_path).expect("the zip").len();
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(&zip_path).expect("open zip")).expect("a zip");
    assert_eq!(archive.len(), 1, "only the bootstrap");
    let mut entry = archive.by_name("bootstrap").expect("bootstrap at the root");
    let mode = entry.unix_mode().expect("unix permissions");
    assert_eq!(mode & 0o111, 0o111, "bootstrap is executable: {mode:o}");
    let mut elf = Vec::new();
    entry.read_to_end(&mut elf).expect("unzip");
    drop(entry);

    let needs = needed_versions(&elf);
    let glibc: Vec<(u32, u32)> = needs.iter().filter_map(|(_, v)| glibc_version(v)).collect();
    assert!(!glibc.is_empty(), "links glibc: {needs:?}");
    let newest = glibc.iter().max().copied().expect("a version");
    assert!(
        newest <= LAMBDA_GLIBC,
        "needs GLIBC_{}.{}, newer than provided.al2023's 2.34: {needs:?}",
        newest.0,
        newest.1
    );
    let libraries: BTreeSet<&str> = needs.iter().map(|(f, _)| f.as_str()).collect();
    for lib in &libraries {
        assert!(
            [
                "libc.so.6",
                "libm.so.6",
                "libgcc_s.so.1",
                "ld-linux-x86-64.so.2"
            ]
            .contains(lib),
            "{lib} is not in the provided.al2023 base image"
        );
    }
    println!(
        "bootstrap.zip {zip_size} B, bootstrap {} B, newest glibc symbol GLIBC_{}.{}, libraries {libraries:?}",
        elf.len(),
        newest.0,
        newest.1
    );

    // The packaged binary itself answers an invocation.
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bootstrap");
    std::fs::write(&bin, &elf).expect("write bootstrap");
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let data = dir.path().join("data").to_string_lossy().into_owned();
    let mut query =
        LambdaInstance::start_binary(bin, Some("query"), &[("TEMPEST_DATA_DIR", data.as_str())])
            .await;
    let outcome = query
        .invoke(
            &http_event("GET", "/api/status/buildinfo", &[], None),
            Duration::from_secs(30),
        )
        .await;
    let (status, _, body) = http_response(&outcome);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let info: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert!(info["version"].is_string(), "{info}");
}
