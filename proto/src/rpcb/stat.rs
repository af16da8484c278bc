//! GETSTAT results (RFC 1833 section 2.1, `rpcb_stat` and
//! `rpcb_stat_byvers`). No I/O.
//!
//! The counters are `int` in the RFC; they are carried as `u32` (the same
//! wire form) because a count is never negative.

use super::{RPCBSTAT_HIGHPROC, RPCBVERS_STAT, RPC_MAXDATASIZE, STAT_LIST_CAP};
use crate::rpc::{Procedure, Program, Version};
use crate::xdr::{Decode, Encode, XdrError, XdrReader, XdrWriter};

/// One entry of `rpcbs_addrlist`: lookups of an address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RpcbsAddr {
    pub prog: Program,
    pub vers: Version,
    pub success: u32,
    pub failure: u32,
    /// At most [`RPC_MAXDATASIZE`] bytes.
    pub netid: String,
}

impl Encode for RpcbsAddr {
    fn encode(&self, w: &mut XdrWriter) {
        self.prog.encode(w);
        self.vers.encode(w);
        w.put_u32(self.success);
        w.put_u32(self.failure);
        w.put_string(&self.netid);
    }
}

impl Decode<'_> for RpcbsAddr {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            prog: Program::decode(r)?,
            vers: Version::decode(r)?,
            success: r.u32_named("rpcbs_addrlist.success")?,
            failure: r.u32_named("rpcbs_addrlist.failure")?,
            netid: r
                .string_named(RPC_MAXDATASIZE, "rpcbs_addrlist.netid")?
                .to_owned(),
        })
    }
}

/// One entry of `rpcbs_rmtcalllist`: remote calls through rpcbind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RpcbsRmtcall {
    pub prog: Program,
    pub vers: Version,
    pub proc: Procedure,
    pub success: u32,
    pub failure: u32,
    /// Calls made through INDIRECT.
    pub indirect: u32,
    /// At most [`RPC_MAXDATASIZE`] bytes.
    pub netid: String,
}

impl Encode for RpcbsRmtcall {
    fn encode(&self, w: &mut XdrWriter) {
        self.prog.encode(w);
        self.vers.encode(w);
        self.proc.encode(w);
        w.put_u32(self.success);
        w.put_u32(self.failure);
        w.put_u32(self.indirect);
        w.put_string(&self.netid);
    }
}

impl Decode<'_> for RpcbsRmtcall {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            prog: Program::decode(r)?,
            vers: Version::decode(r)?,
            proc: Procedure::decode(r)?,
            success: r.u32_named("rpcbs_rmtcalllist.success")?,
            failure: r.u32_named("rpcbs_rmtcalllist.failure")?,
            indirect: r.u32_named("rpcbs_rmtcalllist.indirect")?,
            netid: r
                .string_named(RPC_MAXDATASIZE, "rpcbs_rmtcalllist.netid")?
                .to_owned(),
        })
    }
}

/// `struct rpcb_stat`: statistics of one protocol version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RpcbStat {
    /// `info`: calls per procedure number (`rpcbs_proc`).
    pub info: [u32; RPCBSTAT_HIGHPROC],
    /// Successful SETs.
    pub setinfo: u32,
    /// Successful UNSETs.
    pub unsetinfo: u32,
    /// `addrinfo`, decoded with at most [`STAT_LIST_CAP`] entries.
    pub addrinfo: Vec<RpcbsAddr>,
    /// `rmtinfo`, decoded with at most [`STAT_LIST_CAP`] entries.
    pub rmtinfo: Vec<RpcbsRmtcall>,
}

impl Encode for RpcbStat {
    fn encode(&self, w: &mut XdrWriter) {
        for count in &self.info {
            w.put_u32(*count);
        }
        w.put_u32(self.setinfo);
        w.put_u32(self.unsetinfo);
        w.put_list(&self.addrinfo);
        w.put_list(&self.rmtinfo);
    }
}

impl Decode<'_> for RpcbStat {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        let mut info = [0; RPCBSTAT_HIGHPROC];
        for count in &mut info {
            *count = r.u32_named("rpcb_stat.info")?;
        }
        Ok(Self {
            info,
            setinfo: r.u32_named("rpcb_stat.setinfo")?,
            unsetinfo: r.u32_named("rpcb_stat.unsetinfo")?,
            addrinfo: r.list_named("rpcbs_addrlist", STAT_LIST_CAP, RpcbsAddr::decode)?,
            rmtinfo: r.list_named("rpcbs_rmtcalllist", STAT_LIST_CAP, RpcbsRmtcall::decode)?,
        })
    }
}

/// `rpcb_stat_byvers`: the result of GETSTAT, one [`RpcbStat`] for each of
/// PMAP v2, RPCBIND v3 and v4, in that order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RpcbStatByvers(pub [RpcbStat; RPCBVERS_STAT]);

impl Encode for RpcbStatByvers {
    fn encode(&self, w: &mut XdrWriter) {
        for stat in &self.0 {
            stat.encode(w);
        }
    }
}

impl Decode<'_> for RpcbStatByvers {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        Ok(Self([
            RpcbStat::decode(r)?,
            RpcbStat::decode(r)?,
            RpcbStat::decode(r)?,
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn empty_stat_is_17_words_per_version() {
        let bytes = RpcbStatByvers::default().to_xdr();
        assert_eq!(bytes, vec![0; 3 * 17 * 4]);
        assert_eq!(
            RpcbStatByvers::from_xdr(&bytes),
            Ok(RpcbStatByvers::default())
        );
    }

    #[test]
    fn stat_golden() {
        let mut stat = RpcbStat {
            setinfo: 2,
            unsetinfo: 1,
            ..RpcbStat::default()
        };
        stat.info[3] = 7;
        stat.addrinfo.push(RpcbsAddr {
            prog: Program::NFS,
            vers: Version(3),
            success: 5,
            failure: 1,
            netid: "tcp".into(),
        });
        stat.rmtinfo.push(RpcbsRmtcall {
            prog: Program::STATUS,
            vers: Version(1),
            proc: Procedure(0),
            success: 1,
            failure: 0,
            indirect: 1,
            netid: "udp".into(),
        });
        let mut expected = words(&[0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1]);
        expected.extend(words(&[1, 100_003, 3, 5, 1, 3]));
        expected.extend_from_slice(b"tcp\0");
        expected.extend(words(&[0, 1, 100_024, 1, 0, 1, 0, 1, 3]));
        expected.extend_from_slice(b"udp\0");
        expected.extend(words(&[0]));
        assert_eq!(stat.to_xdr(), expected);
        assert_eq!(RpcbStat::from_xdr(&expected), Ok(stat));
    }
}
