//! Models in the order their tables can be made: every referenced table before the tables that
//! refer to it, whatever order the app listed them in. A model referring to itself is fine; a
//! cycle is fine when one of its references may be NULL (the row is made first, the reference
//! set after); a cycle of NOT NULL references, or a reference to a model not listed, is an error
//! that names the tables.

use std::collections::BTreeSet;

use super::schema::TableSchema;
use super::DbError;

/// `tables` with referenced tables first, otherwise in the order given.
pub fn in_reference_order(tables: &[TableSchema]) -> Result<Vec<TableSchema>, DbError> {
    let names: BTreeSet<&str> = tables.iter().map(|t| t.name).collect();
    for table in tables {
        for column in table.columns {
            if let Some(reference) = column.reference() {
                if !names.contains(reference.table) {
                    return Err(DbError::MissingModel {
                        table: table.name,
                        column: column.name,
                        references: reference.table,
                    });
                }
            }
        }
    }
    // What must come first: every reference but one to itself, NOT NULL ones strictly, nullable
    // ones when they can (a cycle is broken at a nullable reference).
    let needs = |table: &TableSchema, strict_only: bool| -> Vec<&'static str> {
        table
            .columns
            .iter()
            .filter_map(|c| c.reference().map(|r| (r.table, c.nullable)))
            .filter(|&(to, nullable)| to != table.name && !(strict_only && nullable))
            .map(|(to, _)| to)
            .collect()
    };
    let mut placed: Vec<TableSchema> = Vec::with_capacity(tables.len());
    let mut done: BTreeSet<&str> = BTreeSet::new();
    while placed.len() < tables.len() {
        let ready = |strict_only: bool| {
            tables.iter().find(|t| {
                !done.contains(t.name) && needs(t, strict_only).iter().all(|n| done.contains(n))
            })
        };
        // Every reference satisfied if some table allows it; otherwise only the NOT NULL ones.
        match ready(false).or_else(|| ready(true)) {
            Some(table) => {
                done.insert(table.name);
                placed.push(*table);
            }
            None => {
                let stuck = tables
                    .iter()
                    .filter(|t| !done.contains(t.name))
                    .map(|t| t.name)
                    .collect();
                return Err(DbError::ReferenceCycle(stuck));
            }
        }
    }
    Ok(placed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::schema::{ColumnSchema, FieldKind, OnDelete, Reference};

    const fn reference(name: &'static str, to: &'static str, nullable: bool) -> ColumnSchema {
        let mut column = ColumnSchema::new(
            name,
            FieldKind::ForeignKey(Reference {
                table: to,
                column: "id",
                on_delete: OnDelete::Cascade,
            }),
        );
        column.nullable = nullable;
        column
    }

    const fn table(name: &'static str, columns: &'static [ColumnSchema]) -> TableSchema {
        TableSchema {
            name,
            columns,
            authorized_user: false,
            quoted_name: "",
            select_list: "",
            insert_sql: "",
            renamed_from: None,
            unique_together: &[],
        }
    }

    fn names(tables: &[TableSchema]) -> Vec<&'static str> {
        tables.iter().map(|t| t.name).collect()
    }

    #[test]
    fn referenced_tables_come_first_and_the_rest_keeps_its_order() {
        const LINE: [ColumnSchema; 2] = [
            reference("order", "order", false),
            reference("product", "product", false),
        ];
        const ORDER: [ColumnSchema; 1] = [reference("customer", "customer", false)];
        let tables = [
            table("line", &LINE),
            table("order", &ORDER),
            table("product", &[]),
            table("customer", &[]),
        ];
        let ordered = in_reference_order(&tables).unwrap();
        assert_eq!(names(&ordered), ["product", "customer", "order", "line"]);
    }

    #[test]
    fn self_references_and_nullable_cycles_are_ordered_strict_cycles_refused() {
        const EMPLOYEE: [ColumnSchema; 2] = [
            reference("manager", "employee", true),
            reference("desk", "desk", true),
        ];
        const DESK: [ColumnSchema; 1] = [reference("owner", "employee", false)];
        let ordered = in_reference_order(&[table("desk", &DESK), table("employee", &EMPLOYEE)]);
        assert_eq!(names(&ordered.unwrap()), ["employee", "desk"]);

        const A: [ColumnSchema; 1] = [reference("b", "b", false)];
        const B: [ColumnSchema; 1] = [reference("a", "a", false)];
        match in_reference_order(&[table("a", &A), table("b", &B), table("c", &[])]) {
            Err(DbError::ReferenceCycle(stuck)) => assert_eq!(stuck, ["a", "b"]),
            other => panic!("expected a cycle, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_model_is_named() {
        const COURSE: [ColumnSchema; 1] = [reference("teacher", "teacher", false)];
        match in_reference_order(&[table("course", &COURSE)]) {
            Err(err @ DbError::MissingModel { .. }) => {
                let text = err.to_string();
                assert!(
                    text.contains("`course`") && text.contains("`teacher`"),
                    "{text}"
                );
            }
            other => panic!("expected a missing model, got {other:?}"),
        }
    }
}
