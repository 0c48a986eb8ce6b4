//! The deployable packages, built by their scripts: `dist/aws/bootstrap.zip` (Lambda) and
//! `dist/azure/tempest-functions.zip` (Azure Functions). Their binaries need nothing newer than
//! the glibc of the base images (2.34 for Lambda's `provided.al2023`, 2.31 for the Functions
//! host's Debian 11 image), are executable inside the zips, and answer requests.

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
/// glibc of Debian 11, the oldest base of the Azure Functions host images.
const AZURE_GLIBC: (u32, u32) = (2, 31);

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

/// Runs `script` and returns the zip it wrote, as (name, bytes, executable) entries.
fn build(script: &str, zip: &str) -> Vec<(String, Vec<u8>, bool)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(root.join(script))
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let path = root.join(zip);
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(&path).expect("open zip")).expect("a zip");
    println!("{zip}: {} B", std::fs::metadata(&path).expect("zip").len());
    (0..archive.len())
        .map(|i| {
            let mut entry = archive.by_index(i).expect("entry");
            let exec = entry.unix_mode().is_some_and(|m| m & 0o111 == 0o111);
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("unzip");
            (entry.name().to_owned(), bytes, exec)
        })
        .collect()
}

/// Asserts the ELF binary needs no glibc newer than `max` and only libraries every base
/// image has.
fn check_glibc(elf: &[u8], max: (u32, u32)) {
    let needs = needed_versions(elf);
    let glibc: Vec<(u32, u32)> = needs.iter().filter_map(|(_, v)| glibc_version(v)).collect();
    assert!(!glibc.is_empty(), "links glibc: {needs:?}");
    let newest = glibc.iter().max().copied().expect("a version");
    assert!(
        newest <= max,
        "needs GLIBC_{}.{}, newer than {}.{}: {needs:?}",
        newest.0,
        newest.1,
        max.0,
        max.1
    );
    let libraries: BTreeSet<&str> = needs.iter().map(|(f, _)| f.as_str()).collect();
    for lib in &libraries {
        assert!(
            // glibc's own libraries (before 2.34 libdl, libpthread and librt were separate).
            [
                "libc.so.6",
                "libm.so.6",
                "libdl.so.2",
                "libpthread.so.0",
                "librt.so.1",
                "libgcc_s.so.1",
                "ld-linux-x86-64.so.2"
            ]
            .contains(lib),
            "{lib} is not part of glibc, so not in every base image"
        );
    }
    println!(
        "binary {} B, newest glibc symbol GLIBC_{}.{}, libraries {libraries:?}",
        elf.len(),
        newest.0,
        newest.1
    );
}

/// Writes `bytes` as an executable file `name` in `dir`.
fn executable(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let bin = dir.join(name);
    std::fs::write(&bin, bytes).expect("write binary");
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    bin
}

#[tokio::test]
async fn the_lambda_package_runs_on_provided_al2023() {
    let entries = build("scripts/package-lambda", "dist/aws/bootstrap.zip");
    assert_eq!(entries.len(), 1, "only the bootstrap");
    let (name, elf, exec) = &entries[0];
    assert_eq!(name, "bootstrap");
    assert!(exec, "bootstrap is executable");
    check_glibc(elf, LAMBDA_GLIBC);

    // The packaged binary itself answers an invocation.
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = executable(dir.path(), "bootstrap", elf);
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

#[tokio::test]
async fn the_azure_package_is_a_function_app() {
    let entries = build("scripts/package-azure", "dist/azure/tempest-functions.zip");
    let names: BTreeSet<&str> = entries.iter().map(|(n, _, _)| n.as_str()).collect();
    for required in [
        "handler",
        "host.json",
        "local.settings.json",
        "compact/function.json",
        "ingest-otlp/function.json",
        "query/function.json",
    ] {
        assert!(names.contains(required), "{required} in {names:?}");
    }
    let (_, elf, exec) = entries
        .iter()
        .find(|(n, _, _)| n == "handler")
        .expect("handler");
    assert!(exec, "handler is executable");
    check_glibc(elf, AZURE_GLIBC);
    let host: serde_json::Value = serde_json::from_slice(
        &entries
            .iter()
            .find(|(n, _, _)| n == "host.json")
            .expect("host.json")
            .1,
    )
    .expect("host.json is JSON");
    assert_eq!(
        host["customHandler"]["description"]["defaultExecutablePath"],
        "handler"
    );

    // The packaged handler serves, as the Functions host starts it.
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = executable(dir.path(), "handler", elf);
    let (server, port) = tempest_tests::process::spawn_listening(
        "the packaged handler",
        std::time::Duration::from_secs(20),
        |port| {
            let mut cmd = std::process::Command::new(&bin);
            cmd.env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
                .env("TEMPEST_DATA_DIR", dir.path().join("data"))
                .env("TEMPEST_SELF_TELEMETRY", "0");
            cmd
        },
    )
    .await;
    let resp = reqwest::get(format!("http://127.0.0.1:{port}/ready")).await;
    drop(server);
    let resp = resp.expect("GET /ready");
    assert_eq!(resp.status(), 200);
}
