-- +goose Up
-- A merchant's catalog version (issue 19). Every change of what a purchase
-- reads about an item (the item, its coupon template, its merchant) raises
-- merchants.catalog_version, so that a purchase may price its lines from a
-- cache of the catalog (catalog.Service.CachedItemForSale) instead of
-- reading item, merchant, template and stock again on every call:
-- purchase_pay checks, before it writes anything, that the merchant's
-- version is still the one the sale was priced at, and raises 40001
-- (database.WithTx runs the purchase again, from a fresh read) when it is
-- not. Each instance's cache is checked against the database on every sale,
-- so instances need no messages to stay coherent. 00126 adds the check to
-- purchase_pay.
ALTER TABLE merchants ADD COLUMN catalog_version bigint NOT NULL DEFAULT 0;

-- A merchant's own change raises its version; the item and template
-- triggers below raise it explicitly, which this one leaves alone.
-- +goose StatementBegin
CREATE FUNCTION catalog_merchant_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.catalog_version := OLD.catalog_version + 1;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER merchants_catalog_version BEFORE UPDATE ON merchants
    FOR EACH ROW WHEN (NEW.catalog_version = OLD.catalog_version) EXECUTE FUNCTION catalog_merchant_changed();

-- Items and templates raise their merchants' versions once per statement
-- (an import of a thousand items writes the merchant row once, not a
-- thousand times). A transition table serves one event only, hence a
-- trigger each for UPDATE and DELETE.
-- +goose StatementBegin
CREATE FUNCTION catalog_rows_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE merchants SET catalog_version = catalog_version + 1
    WHERE id IN (SELECT merchant_id FROM changed_rows);
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER items_updated_catalog_version AFTER UPDATE ON items
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION catalog_rows_changed();
CREATE TRIGGER items_deleted_catalog_version AFTER DELETE ON items
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION catalog_rows_changed();
CREATE TRIGGER coupon_templates_updated_catalog_version AFTER UPDATE ON coupon_templates
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION catalog_rows_changed();
CREATE TRIGGER coupon_templates_deleted_catalog_version AFTER DELETE ON coupon_templates
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION catalog_rows_changed();

-- catalog_version_is is catalog's answer to "is this still the catalog the
-- sale was priced from?": one primary-key look-up. PL/pgSQL, as 00123's
-- check: PL/pgSQL keeps its plan for the session, where a SQL function
-- with a subquery is not inlined and is planned on every call.
-- +goose StatementBegin
CREATE FUNCTION catalog_version_is(p_merchant_id text, p_version bigint) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM merchants WHERE id = p_merchant_id AND catalog_version = p_version);
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION catalog_version_is;
DROP TRIGGER coupon_templates_deleted_catalog_version ON coupon_templates;
DROP TRIGGER coupon_templates_updated_catalog_version ON coupon_templates;
DROP TRIGGER items_deleted_catalog_version ON items;
DROP TRIGGER items_updated_catalog_version ON items;
DROP FUNCTION catalog_rows_changed;
DROP TRIGGER merchants_catalog_version ON merchants;
DROP FUNCTION catalog_merchant_changed;
ALTER TABLE merchants DROP COLUMN catalog_version;
