-- +goose Up
-- A merchant's own names for its categories, per language (catalog/
-- category_labels.go): rule text on a Chinese page says 不适用于咖啡 when the
-- merchant labelled "coffee" 咖啡 in Chinese. lang is a primary subtag (zh).
CREATE TABLE category_labels (
    merchant_id text        NOT NULL REFERENCES merchants (id),
    category    text        NOT NULL,
    lang        text        NOT NULL,
    label       text        NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, category, lang)
);

-- +goose Down
DROP TABLE category_labels;
