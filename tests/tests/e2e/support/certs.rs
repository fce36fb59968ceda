//! A throwaway certificate authority and a server certificate for 127.0.0.1, made with the
//! `openssl` command for tests of TLS to the broker and to PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::run_checked;

/// A CA and a server certificate signed by it, in a directory removed when dropped.
#[derive(Debug)]
pub struct TestCerts {
    dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    run_checked(
        Command::new("openssl").current_dir(dir).args(args),
        &format!("openssl {args:?} (scripts/install-deps.sh installs it)"),
    );
}

impl TestCerts {
    /// A new CA, and a certificate for `127.0.0.1` and `localhost` signed by it.
    pub fn make() -> Self {
        let dir =
            std::env::temp_dir().join(format!("aigo-certs-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("certificate directory");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=aigo test CA"];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
        openssl(&dir, &ca);
        let mut request = vec!["req", "-subj", "/CN=127.0.0.1"];
        request.extend(ec);
        request.extend(["-keyout", "server.key", "-out", "server.csr"]);
        openssl(&dir, &request);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName = IP:127.0.0.1, DNS:localhost\n\
             basicConstraints = critical, CA:FALSE\n\
             keyUsage = critical, digitalSignature, keyEncipherment\n\
             extendedKeyUsage = serverAuth\n",
        )
        .expect("writing the extensions");
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-days",
                "2",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
        );
        // Readable by the private PostgreSQL's `postgres` user, which copies them.
        for file in ["ca.crt", "server.crt", "server.key"] {
            let mode = std::os::unix::fs::PermissionsExt::from_mode(0o644);
            std::fs::set_permissions(dir.join(file), mode).expect("chmod");
        }
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(&dir, mode).expect("chmod");
        Self { dir }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.join("server.crt")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
