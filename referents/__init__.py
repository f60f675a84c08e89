"""Territories, communes, structures (MDS, ActiPro, France Travail, ATI, CCAS), sectorisation,
referent agents, users, tokens and the audit log."""
