//! `opaque_auth` and AUTH_SYS credentials (RFC 5531 section 8.2 and
//! appendix A). No I/O.

use super::{AuthFlavor, MAX_AUTH_BYTES, MAX_AUTH_SYS_GIDS, MAX_MACHINE_NAME};
use crate::xdr::{Decode, Encode, XdrError, XdrReader, XdrWriter};

/// `opaque_auth` (RFC 5531 section 8.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpaqueAuth<'a> {
    pub flavor: AuthFlavor,
    pub body: &'a [u8],
}

impl OpaqueAuth<'static> {
    /// AUTH_NONE with an empty body, the verifier of every rpcbind reply.
    pub const NONE: Self = Self {
        flavor: AuthFlavor::NONE,
        body: &[],
    };
}

impl Encode for OpaqueAuth<'_> {
    fn encode(&self, w: &mut XdrWriter) {
        self.flavor.encode(w);
        w.put_opaque(self.body);
    }
}

impl<'a> Decode<'a> for OpaqueAuth<'a> {
    fn decode(r: &mut XdrReader<'a>) -> Result<Self, XdrError> {
        let flavor = AuthFlavor(r.u32_named("opaque_auth.flavor")?);
        let body = r.opaque_named(MAX_AUTH_BYTES, "opaque_auth.body")?;
        Ok(Self { flavor, body })
    }
}

/// AUTH_SYS credentials (RFC 5531 appendix A, `authsys_parms`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthSys<'a> {
    pub stamp: u32,
    /// Any bytes: libtirpc's `xdr_string` does not require a character
    /// set, so neither do we.
    pub machine_name: &'a [u8],
    pub uid: u32,
    pub gid: u32,
    pub gids: Vec<u32>,
}

impl<'a> AuthSys<'a> {
    /// Decodes the body of an AUTH_SYS credential.
    pub fn from_body(body: &'a [u8]) -> Result<Self, XdrError> {
        Self::decode(&mut XdrReader::new(body))
    }
}

impl Encode for AuthSys<'_> {
    fn encode(&self, w: &mut XdrWriter) {
        w.put_u32(self.stamp);
        w.put_opaque(self.machine_name);
        w.put_u32(self.uid);
        w.put_u32(self.gid);
        w.put_u32(self.gids.len() as u32);
        for g in &self.gids {
            w.put_u32(*g);
        }
    }
}

impl<'a> Decode<'a> for AuthSys<'a> {
    fn decode(r: &mut XdrReader<'a>) -> Result<Self, XdrError> {
        let stamp = r.u32_named("authsys.stamp")?;
        let machine_name = r.opaque_named(MAX_MACHINE_NAME, "authsys.machinename")?;
        let uid = r.u32_named("authsys.uid")?;
        let gid = r.u32_named("authsys.gid")?;
        let n = r.u32_named("authsys.gids")?;
        if n > MAX_AUTH_SYS_GIDS {
            return Err(XdrError::TooLong {
                field: "authsys.gids",
                len: n,
                max: MAX_AUTH_SYS_GIDS,
            });
        }
        let gids = (0..n)
            .map(|_| r.u32_named("authsys.gids"))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            stamp,
            machine_name,
            uid,
            gid,
            gids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_sys_golden() {
        let a = AuthSys {
            stamp: 1,
            machine_name: b"host",
            uid: 0,
            gid: 0,
            gids: vec![0, 4],
        };
        let bytes = [
            0, 0, 0, 1, 0, 0, 0, 4, b'h', b'o', b's', b't', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0,
            0, 0, 0, 0, 0, 0, 4,
        ];
        assert_eq!(a.to_xdr(), bytes);
        assert_eq!(AuthSys::from_body(&bytes), Ok(a));
        let mut too_many = bytes[..20].to_vec();
        too_many.extend_from_slice(&17u32.to_be_bytes());
        assert!(matches!(
            AuthSys::from_body(&too_many),
            Err(XdrError::TooLong { len: 17, .. })
        ));
    }

    fn body(name: &[u8], gids: &[u32]) -> Vec<u8> {
        AuthSys {
            stamp: 1,
            machine_name: name,
            uid: 0,
            gid: 0,
            gids: gids.to_vec(),
        }
        .to_xdr()
    }

    /// Observed 2026-11-23: a PMAP v2 NULL call over UDP with each body
    /// as an AUTH_SYS credential, sent to Debian's rpcbind 1.2.6 (libtirpc
    /// 1.3.3) in a network namespace; `true` = answered SUCCESS, `false` =
    /// denied with AUTH_ERROR / AUTH_BADCRED.
    #[test]
    fn auth_sys_acceptance_matches_libtirpc() {
        let gids16: Vec<u32> = (0..16).collect();
        let mut count17 = body(b"h", &gids16);
        let at = count17.len() - 68;
        count17[at..at + 4].copy_from_slice(&17u32.to_be_bytes());
        let truncated = body(b"h", &[]);
        let cases: Vec<(&str, Vec<u8>, bool)> = vec![
            ("ok", body(b"host", &[1, 2]), true),
            ("name not UTF-8", body(b"\xff\xfe", &[]), true),
            ("name with NUL", body(b"a\0b", &[]), true),
            ("name 255", body(&[b'a'; 255], &[]), true),
            ("name 256", body(&[b'a'; 256], &[]), false),
            ("16 gids", body(b"h", &gids16), true),
            ("17 gids", body(b"h", &(0..17).collect::<Vec<_>>()), false),
            ("count 17, 16 present", count17, false),
            (
                "no gids count",
                truncated[..truncated.len() - 4].to_vec(),
                false,
            ),
            ("trailing bytes", [truncated, vec![0; 4]].concat(), true),
            ("empty", vec![], false),
        ];
        for (name, bytes, accepted) in cases {
            assert_eq!(AuthSys::from_body(&bytes).is_ok(), accepted, "{name}");
        }
    }
}
