//! Where networks are: a table of CIDR ranges to named sites with coordinates, used to spot
//! impossible travel between two requests of one session.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Mean Earth radius used for great-circle distances, in kilometres.
const EARTH_RADIUS_KM: f64 = 6371.0;

/// A named place and the network ranges seen there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Site {
    /// The range of addresses at this site.
    pub network: IpNet,
    /// The site's name (`paris-office`).
    pub name: String,
    /// Latitude in degrees, -90 to 90.
    pub latitude: f64,
    /// Longitude in degrees, -180 to 180.
    pub longitude: f64,
}

/// An error in the site table.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum SiteError {
    /// A coordinate is outside its range or not a number.
    #[error("site '{name}' has invalid coordinates ({latitude}, {longitude})")]
    BadCoordinates {
        /// The site.
        name: String,
        /// The latitude given.
        latitude: f64,
        /// The longitude given.
        longitude: f64,
    },
    /// Two entries have the same network.
    #[error("network {network} is listed twice in the site table")]
    DuplicateNetwork {
        /// The network.
        network: IpNet,
    },
}

/// The site table; the most specific network containing an address wins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiteTable {
    sites: Vec<Site>,
}

impl SiteTable {
    /// Validates and builds the table.
    pub fn new(sites: Vec<Site>) -> Result<Self, SiteError> {
        let mut seen = std::collections::HashSet::new();
        for s in &sites {
            let lat_ok = (-90.0..=90.0).contains(&s.latitude);
            let lon_ok = (-180.0..=180.0).contains(&s.longitude);
            if !lat_ok || !lon_ok {
                return Err(SiteError::BadCoordinates {
                    name: s.name.clone(),
                    latitude: s.latitude,
                    longitude: s.longitude,
                });
            }
            if !seen.insert(s.network.trunc()) {
                return Err(SiteError::DuplicateNetwork { network: s.network });
            }
        }
        Ok(Self { sites })
    }

    /// Whether the table is empty (impossible travel is then never detected).
    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    /// The site of an address, if any range contains it.
    pub fn site_of(&self, ip: IpAddr) -> Option<&Site> {
        let ip = ip.to_canonical();
        self.sites
            .iter()
            .filter(|s| s.network.contains(&ip))
            .max_by_key(|s| s.network.prefix_len())
    }
}

/// The great-circle distance between two sites, in kilometres (haversine formula).
pub fn distance_km(a: &Site, b: &Site) -> f64 {
    let (lat1, lat2) = (a.latitude.to_radians(), b.latitude.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.longitude - a.longitude).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(net: &str, name: &str, lat: f64, lon: f64) -> Site {
        Site {
            network: net.parse().unwrap(),
            name: name.into(),
            latitude: lat,
            longitude: lon,
        }
    }

    #[test]
    fn paris_to_new_york_is_about_5840_km() {
        let d = distance_km(
            &site("10.0.0.0/8", "par", 48.8566, 2.3522),
            &site("11.0.0.0/8", "nyc", 40.7128, -74.0060),
        );
        assert!((d - 5837.0).abs() < 20.0, "{d}");
    }

    #[test]
    fn most_specific_network_wins() {
        let t = SiteTable::new(vec![
            site("198.51.100.0/24", "wide", 0.0, 0.0),
            site("198.51.100.128/25", "narrow", 1.0, 1.0),
        ])
        .unwrap();
        assert_eq!(
            t.site_of("198.51.100.200".parse().unwrap()).unwrap().name,
            "narrow"
        );
        assert_eq!(
            t.site_of("198.51.100.2".parse().unwrap()).unwrap().name,
            "wide"
        );
        assert!(t.site_of("203.0.113.1".parse().unwrap()).is_none());
        assert_eq!(
            t.site_of("::ffff:198.51.100.2".parse().unwrap())
                .unwrap()
                .name,
            "wide"
        );
    }

    #[test]
    fn bad_tables_are_refused() {
        assert!(matches!(
            SiteTable::new(vec![site("10.0.0.0/8", "x", 91.0, 0.0)]),
            Err(SiteError::BadCoordinates { .. })
        ));
        assert!(matches!(
            SiteTable::new(vec![site("10.0.0.0/8", "x", f64::NAN, 0.0)]),
            Err(SiteError::BadCoordinates { .. })
        ));
        assert!(matches!(
            SiteTable::new(vec![
                site("10.0.0.0/8", "a", 0.0, 0.0),
                site("10.1.0.0/8", "b", 0.0, 0.0)
            ]),
            Err(SiteError::DuplicateNetwork { .. })
        ));
    }
}
