-- Run once by the postgres image on an empty volume (/docker-entrypoint-initdb.d): one server, one database
-- per service (design.md: a service never reads the other's tables).
CREATE DATABASE membercenter;
CREATE DATABASE sendengine;
