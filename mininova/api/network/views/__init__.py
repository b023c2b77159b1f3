"""Pure views of the network API: rows in, Neutron documents out."""
