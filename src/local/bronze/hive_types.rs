//! Hive column types (`string`, `decimal(p,s)`, `struct<...>`, `map<k,v>`,
//! `array<t>`, ...) as written in DDL, parsed into Arrow data types.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, TimeUnit};

use super::ddl::{DdlError, Parser};
use super::lexer::Tok;

impl Parser {
    pub(crate) fn data_type(&mut self) -> Result<DataType, DdlError> {
        let (line, column) = self.here();
        let word = match self.peek() {
            Some(Tok::Word(w)) => w.to_lowercase(),
            _ => return Err(self.error("column type")),
        };
        self.pos += 1;
        let ty = match word.as_str() {
            "string" => DataType::Utf8,
            "varchar" | "char" => {
                if self.eat_punct('(') {
                    self.number("length")?;
                    self.expect_punct(')')?;
                }
                DataType::Utf8
            }
            "tinyint" => DataType::Int8,
            "smallint" => DataType::Int16,
            "int" | "integer" => DataType::Int32,
            "bigint" => DataType::Int64,
            "double" => {
                self.eat_kw("PRECISION");
                DataType::Float64
            }
            "float" | "real" => DataType::Float32,
            "boolean" => DataType::Boolean,
            "date" => DataType::Date32,
            "timestamp" => DataType::Timestamp(TimeUnit::Millisecond, None),
            "decimal" | "numeric" => self.decimal(line, column)?,
            "struct" => {
                self.expect_punct('<')?;
                let mut fields = Vec::new();
                loop {
                    let (fl, fc) = self.here();
                    let name = self.ident("struct field name")?;
                    self.expect_punct(':')?;
                    let ty = self.data_type()?;
                    if self.eat_kw("COMMENT") {
                        self.string("field comment string")?;
                    }
                    if fields.iter().any(|f: &Field| f.name() == &name) {
                        return Err(DdlError::DuplicateColumn { name, line: fl, column: fc });
                    }
                    fields.push(Field::new(name, ty, true));
                    if self.eat_punct('>') {
                        break;
                    }
                    if !self.eat_punct(',') {
                        return Err(self.error("',' or '>' in struct type"));
                    }
                }
                DataType::Struct(Fields::from(fields))
            }
            "map" => {
                self.expect_punct('<')?;
                let key = self.data_type()?;
                self.expect_punct(',')?;
                let value = self.data_type()?;
                self.expect_punct('>')?;
                map_type(key, value)
            }
            "array" => {
                self.expect_punct('<')?;
                let item = self.data_type()?;
                self.expect_punct('>')?;
                DataType::List(Arc::new(Field::new("item", item, true)))
            }
            _ => {
                return Err(DdlError::UnsupportedType { name: word, line, column });
            }
        };
        Ok(ty)
    }

    fn decimal(&mut self, line: usize, column: usize) -> Result<DataType, DdlError> {
        let (mut precision, mut scale) = (10, 0);
        if self.eat_punct('(') {
            precision = self.number("decimal precision")?;
            if self.eat_punct(',') {
                scale = self.number("decimal scale")?;
            }
            self.expect_punct(')')?;
        }
        if !(1..=38).contains(&precision) || scale > precision {
            return Err(DdlError::Invalid {
                what: "decimal type",
                detail: format!(
                    "decimal({precision},{scale}) needs 1 <= precision <= 38 and scale <= precision"
                ),
                line,
                column,
            });
        }
        Ok(DataType::Decimal128(precision as u8, scale as i8))
    }
}

/// The Arrow type of a Hive `map<key, value>`.
pub(crate) fn map_type(key: DataType, value: DataType) -> DataType {
    let entries = Fields::from(vec![Field::new("key", key, false), Field::new("value", value, true)]);
    DataType::Map(Arc::new(Field::new("entries", DataType::Struct(entries), false)), false)
}
