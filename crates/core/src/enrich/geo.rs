//! Client IP → country and autonomous system, from MaxMind-format databases (GeoLite2 or
//! GeoIP2 Country/ASN, DB-IP, ip-location-db, ...), read from bytes the caller loaded.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Where an address is, as far as the databases know.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Place {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_org: Option<String>,
}

impl Place {
    fn is_empty(&self) -> bool {
        self.country.is_none() && self.asn.is_none() && self.as_org.is_none()
    }
}

/// The fields read from a record, in either schema: MaxMind's (`country.iso_code`,
/// `autonomous_system_number`) or the flat one of ip-location-db (`country_code`).
#[derive(Deserialize, Default)]
struct Record<'a> {
    #[serde(borrow, default)]
    country: Option<Country<'a>>,
    #[serde(default)]
    country_code: Option<&'a str>,
    #[serde(default)]
    autonomous_system_number: Option<u32>,
    #[serde(default)]
    autonomous_system_organization: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct Country<'a> {
    #[serde(default)]
    iso_code: Option<&'a str>,
}

/// One database.
pub struct GeoDatabase {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl GeoDatabase {
    /// The database in `bytes`; fails when they are not a MaxMind-format database.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, String> {
        maxminddb::Reader::from_source(bytes)
            .map(|reader| Self { reader })
            .map_err(|e| format!("not a MaxMind-format database: {e}"))
    }

    /// The database's type, as its metadata says (e.g. `GeoLite2-Country`).
    pub fn kind(&self) -> &str {
        &self.reader.metadata().database_type
    }

    fn fill(&self, ip: IpAddr, place: &mut Place) {
        let Ok(found) = self.reader.lookup(ip) else {
            return;
        };
        let Ok(Some(record)) = found.decode::<Record<'_>>() else {
            return;
        };
        if place.country.is_none() {
            place.country = record
                .country
                .and_then(|c| c.iso_code)
                .or(record.country_code)
                .map(str::to_owned);
        }
        if place.asn.is_none() {
            place.asn = record.autonomous_system_number;
        }
        if place.as_org.is_none() {
            place.as_org = record.autonomous_system_organization.map(str::to_owned);
        }
    }
}

/// Looks `ip` up in every database (the first to answer a field wins); None when none knows it.
pub fn locate(databases: &[GeoDatabase], ip: IpAddr) -> Option<Place> {
    let mut place = Place::default();
    for db in databases {
        db.fill(ip, &mut place);
    }
    (!place.is_empty()).then_some(place)
}
