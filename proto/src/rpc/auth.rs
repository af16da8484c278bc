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
    pub machine_name: &'a str,
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
        w.put_string(self.machine_name);
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
        let machine_name = r.string_named(MAX_MACHINE_NAME, "authsys.machinename")?;
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
            machine_name: "host",
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
}
