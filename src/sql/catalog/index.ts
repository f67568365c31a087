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
export { routineDefinitions } from './read-routines.js'
export { introspectTemplate, readSchemaInTransaction } from './read-schema.js'
export { existingSchemas, introspectSchemas, tableNames } from './read-tables.js'
export { describeTypes, type TypeCatalog, type TypeShape, type TypeUse } from './read-types.js'
export { loadTableFacts } from './table-facts.js'
