//! Filling a [`Customer`] from a row's checked values: where each field's value goes. The
//! checks that decide whether a value may go there are `validate.rs`'s.

use secrecy::SecretString;

use super::fields::Field;
use super::kinds::Value;
use super::validate::Row;
use crate::customer::{Address, Customer, Text};

/// Puts an address field's value where the [`Address`] keeps it.
pub(super) fn place_address(a: &mut Address, field: &Field, value: Value) {
    match (field, value) {
        (Field::Street, Value::Lines(v)) => a.street = v,
        (Field::City, Value::Text(v)) => a.city = v,
        (Field::Postcode, Value::Text(v)) => a.postcode = v,
        (Field::CountryId, Value::Text(v)) => a.country_id = v,
        (Field::Region, Value::Text(v)) => a.region = Some(v),
        (Field::Telephone, Value::Text(v)) => a.telephone = v,
        (Field::Company, Value::Text(v)) => a.company = Some(v),
        _ => {}
    }
}

/// The record being filled from a row's checked values.
pub(super) struct Draft {
    pub(super) customer: Customer,
    address: Address,
    password: Option<SecretString>,
}

impl Draft {
    pub(super) fn new(website_id: u32, custom_attributes: Vec<(Text, Text)>) -> Self {
        Draft {
            customer: Customer {
                website_id,
                custom_attributes,
                ..Customer::default()
            },
            address: Address::empty(),
            password: None,
        }
    }

    /// Puts a field's value where the customer record keeps it.
    pub(super) fn place(&mut self, field: &Field, value: Value) {
        let c = &mut self.customer;
        match (field, value) {
            (Field::Email, Value::Text(v)) => c.email = v.into_string(),
            (Field::Firstname, Value::Text(v)) => c.firstname = v,
            (Field::Lastname, Value::Text(v)) => c.lastname = v,
            (Field::Middlename, Value::Text(v)) => c.middlename = Some(v),
            (Field::Prefix, Value::Text(v)) => c.prefix = Some(v),
            (Field::Suffix, Value::Text(v)) => c.suffix = Some(v),
            (Field::Taxvat, Value::Text(v)) => c.taxvat = Some(v),
            (Field::Dob, Value::Text(v)) => c.dob = Some(v),
            (Field::Gender, Value::Code(v)) => c.gender = Some(v),
            (Field::GroupId, Value::Number(n)) => c.group_id = Some(n),
            (Field::WebsiteId, Value::Number(n)) => c.website_id = n,
            (Field::StoreId, Value::Number(n)) => c.store_id = Some(n),
            (Field::IsSubscribed, Value::Code(v)) => c.is_subscribed = Some(v == 1),
            (Field::Password, Value::Secret(v)) => self.password = Some(v),
            // Custom attributes are gathered in step 1; that every other field's kind gives
            // the value its place takes is held by `every_field_lands_in_the_customer`.
            (field, value) => place_address(&mut self.address, field, value),
        }
    }

    /// Further address number `number` (2 or more).
    pub(super) fn further(&mut self, number: u16, address: Address) {
        let at = usize::from(number) - 2;
        let list = &mut self.customer.further_addresses;
        if list.len() <= at {
            list.resize(at + 1, None);
        }
        list[at] = Some(address);
    }

    pub(super) fn into_row(self, line: u64, address_given: bool) -> Row {
        let mut customer = self.customer;
        customer.address = address_given.then_some(self.address);
        Row {
            line,
            customer,
            password: self.password,
        }
    }
}
