//! The directory data a shop model may take without spelling it out: the English names and
//! three-letter codes of common countries, and the region lists whose ids are the same in
//! every Magento install.
//!
//! Region ids come from the `directory_country_region` table's auto-increment, so they are
//! fixed only for the regions Magento's first directory patch inserts, in its order
//! (`app/code/Magento/Directory/Setup/Patch/Data/InitializeDirectoryData.php`: US 1-65,
//! CA 66-78, DE 79-94, AT 95-103, ...). Countries added by later patches (`AddDataForSweden`,
//! `AddDataForPoland`, ...) get ids that depend on the order patches ran in, so a shop model
//! lists those regions itself, copied from the shop's `GET /V1/directory/countries`.

/// A country Magento knows: ISO 3166-1 alpha-2, alpha-3, and its English (en_US locale) name,
/// as `GET /V1/directory/countries` gives `full_name_english`.
pub(super) const COUNTRIES: &[(&str, &str, &str)] = &[
    ("AR", "ARG", "Argentina"),
    ("AT", "AUT", "Austria"),
    ("AU", "AUS", "Australia"),
    ("BE", "BEL", "Belgium"),
    ("BG", "BGR", "Bulgaria"),
    ("BR", "BRA", "Brazil"),
    ("CA", "CAN", "Canada"),
    ("CH", "CHE", "Switzerland"),
    ("CN", "CHN", "China"),
    ("CZ", "CZE", "Czechia"),
    ("DE", "DEU", "Germany"),
    ("DK", "DNK", "Denmark"),
    ("EE", "EST", "Estonia"),
    ("ES", "ESP", "Spain"),
    ("FI", "FIN", "Finland"),
    ("FR", "FRA", "France"),
    ("GB", "GBR", "United Kingdom"),
    ("GR", "GRC", "Greece"),
    ("HR", "HRV", "Croatia"),
    ("HU", "HUN", "Hungary"),
    ("IE", "IRL", "Ireland"),
    ("IN", "IND", "India"),
    ("IS", "ISL", "Iceland"),
    ("IT", "ITA", "Italy"),
    ("JP", "JPN", "Japan"),
    ("KR", "KOR", "South Korea"),
    ("LT", "LTU", "Lithuania"),
    ("LU", "LUX", "Luxembourg"),
    ("LV", "LVA", "Latvia"),
    ("MX", "MEX", "Mexico"),
    ("NL", "NLD", "Netherlands"),
    ("NO", "NOR", "Norway"),
    ("NZ", "NZL", "New Zealand"),
    ("PL", "POL", "Poland"),
    ("PT", "PRT", "Portugal"),
    ("RO", "ROU", "Romania"),
    ("SE", "SWE", "Sweden"),
    ("SG", "SGP", "Singapore"),
    ("SI", "SVN", "Slovenia"),
    ("SK", "SVK", "Slovakia"),
    ("UA", "UKR", "Ukraine"),
    ("US", "USA", "United States"),
    ("ZA", "ZAF", "South Africa"),
];

/// A country's regions: `(country, first id, [(code, name)])`, ids counting up from the first
/// in list order.
pub(super) type RegionList = (&'static str, i64, &'static [(&'static str, &'static str)]);

/// Region lists with install-independent ids, as `InitializeDirectoryData` inserts them.
/// Austria's codes are the ISO ones of `UpdateRegionCodesForAustriaV1` (`WI` became `AT-9`).
pub(super) const REGIONS: &[RegionList] = &[
    ("US", 1, US_REGIONS),
    ("CA", 66, CA_REGIONS),
    ("AT", 95, AT_REGIONS),
];

const US_REGIONS: &[(&str, &str)] = &[
    ("AL", "Alabama"),
    ("AK", "Alaska"),
    ("AS", "American Samoa"),
    ("AZ", "Arizona"),
    ("AR", "Arkansas"),
    ("AE", "Armed Forces Africa"),
    ("AA", "Armed Forces Americas"),
    ("AE", "Armed Forces Canada"),
    ("AE", "Armed Forces Europe"),
    ("AE", "Armed Forces Middle East"),
    ("AP", "Armed Forces Pacific"),
    ("CA", "California"),
    ("CO", "Colorado"),
    ("CT", "Connecticut"),
    ("DE", "Delaware"),
    ("DC", "District of Columbia"),
    ("FM", "Federated States Of Micronesia"),
    ("FL", "Florida"),
    ("GA", "Georgia"),
    ("GU", "Guam"),
    ("HI", "Hawaii"),
    ("ID", "Idaho"),
    ("IL", "Illinois"),
    ("IN", "Indiana"),
    ("IA", "Iowa"),
    ("KS", "Kansas"),
    ("KY", "Kentucky"),
    ("LA", "Louisiana"),
    ("ME", "Maine"),
    ("MH", "Marshall Islands"),
    ("MD", "Maryland"),
    ("MA", "Massachusetts"),
    ("MI", "Michigan"),
    ("MN", "Minnesota"),
    ("MS", "Mississippi"),
    ("MO", "Missouri"),
    ("MT", "Montana"),
    ("NE", "Nebraska"),
    ("NV", "Nevada"),
    ("NH", "New Hampshire"),
    ("NJ", "New Jersey"),
    ("NM", "New Mexico"),
    ("NY", "New York"),
    ("NC", "North Carolina"),
    ("ND", "North Dakota"),
    ("MP", "Northern Mariana Islands"),
    ("OH", "Ohio"),
    ("OK", "Oklahoma"),
    ("OR", "Oregon"),
    ("PW", "Palau"),
    ("PA", "Pennsylvania"),
    ("PR", "Puerto Rico"),
    ("RI", "Rhode Island"),
    ("SC", "South Carolina"),
    ("SD", "South Dakota"),
    ("TN", "Tennessee"),
    ("TX", "Texas"),
    ("UT", "Utah"),
    ("VT", "Vermont"),
    ("VI", "Virgin Islands"),
    ("VA", "Virginia"),
    ("WA", "Washington"),
    ("WV", "West Virginia"),
    ("WI", "Wisconsin"),
    ("WY", "Wyoming"),
];

const CA_REGIONS: &[(&str, &str)] = &[
    ("AB", "Alberta"),
    ("BC", "British Columbia"),
    ("MB", "Manitoba"),
    ("NL", "Newfoundland and Labrador"),
    ("NB", "New Brunswick"),
    ("NS", "Nova Scotia"),
    ("NT", "Northwest Territories"),
    ("NU", "Nunavut"),
    ("ON", "Ontario"),
    ("PE", "Prince Edward Island"),
    ("QC", "Quebec"),
    ("SK", "Saskatchewan"),
    ("YT", "Yukon Territory"),
];

/// In `InitializeDirectoryData` order (Wien first), with the codes of
/// `UpdateRegionCodesForAustriaV1`.
const AT_REGIONS: &[(&str, &str)] = &[
    ("AT-9", "Wien"),
    ("AT-3", "Niederösterreich"),
    ("AT-4", "Oberösterreich"),
    ("AT-5", "Salzburg"),
    ("AT-2", "Kärnten"),
    ("AT-6", "Steiermark"),
    ("AT-7", "Tirol"),
    ("AT-1", "Burgenland"),
    ("AT-8", "Vorarlberg"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_region_ids_follow_initialize_directory_data() {
        let id_of = |country: &str, name: &str| {
            let (_, first, list) = REGIONS
                .iter()
                .find(|(c, _, _)| *c == country)
                .expect("country");
            let pos = list.iter().position(|(_, n)| *n == name).expect("region");
            first + i64::try_from(pos).expect("small")
        };
        assert_eq!(id_of("US", "California"), 12);
        assert_eq!(id_of("US", "Illinois"), 23);
        assert_eq!(id_of("US", "Wyoming"), 65);
        assert_eq!(id_of("CA", "Alberta"), 66);
        assert_eq!(id_of("CA", "Yukon Territory"), 78);
        assert_eq!(id_of("AT", "Wien"), 95);
        assert_eq!(id_of("AT", "Vorarlberg"), 103);
        assert!(COUNTRIES.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
    }
}
