export type {
  CheckDef,
  ColumnDef,
  ColumnInfo,
  DomainDef,
  EnumDef,
  ExclusionDef,
  ForeignKeyAction,
  ForeignKeyDef,
  ForeignKeyInfo,
  IndexDef,
  KeyDef,
  SchemaTables,
  SequenceDef,
  TableDef,
  TableFacts,
  TableInfo,
  TemplateSchema,
} from './model.js'
export { introspectTemplate, readSchemaInTransaction } from './read-schema.js'
export { existingSchemas, introspectSchemas, tableNames } from './read-tables.js'
export { loadTableFacts } from './table-facts.js'
