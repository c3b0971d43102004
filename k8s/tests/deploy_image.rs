//! The image: scripts/image-build-local builds it with `podman build` from
//! the meshid binary under test (deploy/image/Containerfile.local, FROM
//! scratch, no network); it runs as the non-root user 65532 with the binary
//! as its entrypoint, holds nothing but the binary, the shared libraries it
//! links, passwd/group and an empty /tmp (no shell), and the binary starts
//! inside it (chroot as 65532: `podman run` is refused on these machines).

// Shared by deploy.rs and deploy_image.rs; each uses part of it.
#[allow(dead_code)]
#[path = "deploy/tools.rs"]
mod tools;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Removes the test's image when the test ends, passed or not.
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(["rmi", "-f", &self.0]).output();
    }
}

/// Every file and directory under `dir`, as absolute paths inside it.
fn tree(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("dir entry").path();
            let inside = path.strip_prefix(dir).expect("under dir");
            out.insert(format!("/{}", inside.display()));
            if path.is_dir() && !path.is_symlink() {
                todo.push(path);
            }
        }
    }
    out
}

#[test]
fn the_image_is_the_binary_and_its_libraries_run_as_non_root() {
    let Some(podman) = tools::podman("the_image_is_the_binary_and_its_libraries_run_as_non_root")
    else {
        return;
    };
    let bin = meshid_tests::meshid_bin();
    let tag = format!("localhost/meshid-deploy-test:{}", std::process::id());
    let image = Image(tag.clone());
    let out = tools::run(
        Command::new(tools::root().join("scripts/image-build-local"))
            .arg(&bin)
            .arg(&tag),
    );
    let field = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("image-build-local printed no {key}: {out}"))
            .to_owned()
    };
    assert_eq!(field("user"), "65532:65532");
    assert_eq!(field("entrypoint"), r#"["/usr/local/bin/meshid"]"#);
    let size: u64 = field("size").parse().expect("size in bytes");
    let binary = std::fs::metadata(&bin).expect("binary").len();

    // What is in it: mount the image's filesystem (root, read-only).
    let mount = tools::run(Command::new(&podman).args(["image", "mount", &image.0]));
    let root = Path::new(mount.trim());
    let files = tree(root);
    let libs: BTreeSet<String> = tools::run(Command::new("ldd").arg(&bin))
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(str::to_owned)
        .collect();
    let mut want: BTreeSet<String> = ["/etc", "/etc/passwd", "/etc/group", "/tmp", "/usr"]
        .into_iter()
        .chain(["/usr/local", "/usr/local/bin", "/usr/local/bin/meshid"])
        .map(str::to_owned)
        .collect();
    for lib in &libs {
        let mut p = Path::new(lib);
        while p != Path::new("/") {
            want.insert(p.display().to_string());
            p = p.parent().expect("absolute path");
        }
    }
    assert_eq!(files, want, "the image holds other files than expected");
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).expect("passwd");
    assert_eq!(
        passwd.trim(),
        "meshid:x:65532:65532:meshid:/nonexistent:/sbin/nologin"
    );

    // The binary starts in the image's filesystem as its user, with only
    // the libraries the image holds.
    let version = tools::run(
        Command::new("chroot")
            .arg("--userspec=65532:65532")
            .arg(root)
            .args(["/usr/local/bin/meshid", "--version"]),
    );
    assert!(version.starts_with("meshid "), "{version}");
    let stripped = std::fs::metadata(root.join("usr/local/bin/meshid")).map_or(0, |m| m.len());
    let _ = Command::new(&podman)
        .args(["image", "unmount", &image.0])
        .output();

    assert!(
        size < binary + 16 * 1024 * 1024,
        "image {size} B, binary {binary} B"
    );
    eprintln!(
        "image {tag}: {size} bytes ({:.1} MiB) as `podman image inspect` reports it; binary \
         {binary} B unstripped, {stripped} B in the image; libraries {libs:?}",
        size as f64 / (1024.0 * 1024.0)
    );
}
